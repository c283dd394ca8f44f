/*
 * One pass over a block of plain CSV lines: the replay's fast path (replay/grid_block.py).
 *
 * It accepts a block only when every line is unambiguous: the header's number of fields, no quote,
 * only printable ASCII, LF or CRLF line ends, an ISO 8601 UTC timestamp in one of a few spellings,
 * a station id matching detector.readings.STATION_ID_PATTERN, and sensor fields that are plain JSON
 * numbers of at most `max_number_chars` characters. Anything else, anywhere in the block, and it
 * returns None: the caller then parses the block with Arrow and pandas as before, so this file
 * never decides what a bad row is, only recognises rows that are certainly good.
 *
 * Outputs (buffers the caller allocates): per line the timestamp in nanoseconds truncated to
 * microseconds, the station's code in the order stations first appear, and per sensor column the
 * field texts laid end to end with their offsets (an Arrow string array's two buffers).
 *
 * Every read is bounded by the block's length; every write by the output buffers' sizes, which
 * are checked against the line count before anything is written.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_STATIONS 1024
#define STATION_SLOTS 2048 /* power of two, at least twice MAX_STATIONS */
#define MAX_STATION_CHARS 64
#define MAX_FIELDS 256

enum { ORDINARY, COMMA, NEWLINE, CARRIAGE_RETURN, UNUSUAL };
static unsigned char byte_kind[256];

static void init_byte_kinds(void) {
    for (int c = 0; c < 256; c++) byte_kind[c] = (c < 0x20 || c > 0x7e || c == '"') ? UNUSUAL : ORDINARY;
    byte_kind[','] = COMMA;
    byte_kind['\n'] = NEWLINE;
    byte_kind['\r'] = CARRIAGE_RETURN;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_alnum(unsigned char c) {
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)? */
static int plain_number(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n || !is_digit(s[i])) return 0;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) return 0;
        while (i < n && is_digit(s[i])) i++;
    }
    return i == n;
}

/* ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$ */
static int station_id(const unsigned char *s, Py_ssize_t n) {
    if (n < 1 || n > MAX_STATION_CHARS || !is_alnum(s[0])) return 0;
    for (Py_ssize_t i = 1; i < n; i++) {
        unsigned char c = s[i];
        if (!(is_alnum(c) || c == '_' || c == '.' || c == ':' || c == '-')) return 0;
    }
    return 1;
}

static int digits(const unsigned char *s, int count, int *value) {
    int v = 0;
    for (int i = 0; i < count; i++) {
        if (!is_digit(s[i])) return 0;
        v = v * 10 + (s[i] - '0');
    }
    *value = v;
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return days[m - 1];
}

/*
 * YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|+00:00], years 1678-2261 (inside what nanoseconds since the
 * epoch can hold, as pandas parses it), as nanoseconds truncated to microseconds.
 */
static int utc_timestamp(const unsigned char *s, Py_ssize_t n, int64_t *out) {
    int year, month, day, hour, minute, second;
    if (n < 19) return 0;
    if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &month) || s[7] != '-' ||
        !digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != ' ') || !digits(s + 11, 2, &hour) ||
        s[13] != ':' || !digits(s + 14, 2, &minute) || s[16] != ':' || !digits(s + 17, 2, &second))
        return 0;
    if (year < 1678 || year > 2261 || month < 1 || month > 12 || day < 1 ||
        day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59)
        return 0;
    Py_ssize_t i = 19;
    int64_t fraction_ns = 0;
    if (i < n && s[i] == '.') {
        i++;
        int count = 0;
        int64_t scale = 100000000;
        while (i < n && is_digit(s[i]) && count < 9) {
            fraction_ns += (s[i] - '0') * scale;
            scale /= 10;
            i++;
            count++;
        }
        if (count == 0 || (i < n && is_digit(s[i]))) return 0;
    }
    if (i < n) {
        Py_ssize_t rest = n - i;
        if (!((rest == 1 && s[i] == 'Z') || (rest == 6 && memcmp(s + i, "+00:00", 6) == 0))) return 0;
    }
    int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    /* Years from 1678 give positive fractions on top of a whole second: truncation is a plain %. */
    *out = seconds * 1000000000 + (fraction_ns - fraction_ns % 1000);
    return 1;
}

typedef struct {
    Py_ssize_t start[MAX_STATIONS];
    Py_ssize_t length[MAX_STATIONS];
    int slot_code[STATION_SLOTS]; /* -1: empty */
    int count;
} StationTable;

static int station_code(StationTable *table, const unsigned char *data, Py_ssize_t start, Py_ssize_t n) {
    uint32_t hash = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++) hash = (hash ^ data[start + i]) * 16777619u;
    for (uint32_t probe = 0; probe < STATION_SLOTS; probe++) {
        uint32_t slot = (hash + probe) & (STATION_SLOTS - 1);
        int code = table->slot_code[slot];
        if (code < 0) {
            if (table->count >= MAX_STATIONS) return -1;
            code = table->count++;
            table->start[code] = start;
            table->length[code] = n;
            table->slot_code[slot] = code;
            return code;
        }
        if (table->length[code] == n && memcmp(data + table->start[code], data + start, (size_t)n) == 0)
            return code;
    }
    return -1;
}


/*
 * parse(data, capacity, n_fields, timestamp_field, station_field, sensor_fields, max_number_chars,
 *       ts_out, station_out, offsets_out, texts_out)
 *   -> (lines, station_starts, station_lengths) or None
 *
 * data: bytes ending in b"\n"; capacity: the most lines the outputs hold (more: None).
 * sensor_fields: the field index of each sensor, in the sensors' order. ts_out: int64[capacity];
 * station_out: int32[capacity]; offsets_out: int32[n_sensors * (capacity + 1)] (sensor j's offsets
 * from j * (capacity + 1)); texts_out: uint8[n_sensors * capacity * max_number_chars] (sensor j's
 * texts from j * capacity * max_number_chars).
 */
static PyObject *parse(PyObject *self, PyObject *args) {
    Py_buffer data, ts_out, station_out, offsets_out, texts_out;
    Py_ssize_t capacity;
    int n_fields, timestamp_field, station_field, max_number_chars;
    PyObject *sensor_fields;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*niiiO!iw*w*w*w*", &data, &capacity, &n_fields, &timestamp_field,
                          &station_field, &PyTuple_Type, &sensor_fields, &max_number_chars, &ts_out,
                          &station_out, &offsets_out, &texts_out))
        return NULL;
    PyObject *result = NULL;
    StationTable *stations = NULL;
    int sensor_of_field[MAX_FIELDS]; /* -1: not a sensor */
    const unsigned char *bytes = (const unsigned char *)data.buf;
    const Py_ssize_t length = data.len;
    const Py_ssize_t n_sensors = PyTuple_GET_SIZE(sensor_fields);

    if (n_fields < 1 || n_fields > MAX_FIELDS || timestamp_field < 0 || timestamp_field >= n_fields ||
        station_field >= n_fields || n_sensors < 1 || capacity < 0) {
        PyErr_SetString(PyExc_ValueError, "bad layout");
        goto done;
    }
    for (int f = 0; f < MAX_FIELDS; f++) sensor_of_field[f] = -1;
    for (Py_ssize_t j = 0; j < n_sensors; j++) {
        long field = PyLong_AsLong(PyTuple_GET_ITEM(sensor_fields, j));
        if (field == -1 && PyErr_Occurred()) goto done;
        if (field < 0 || field >= n_fields || field == timestamp_field || field == station_field ||
            sensor_of_field[field] != -1) {
            PyErr_SetString(PyExc_ValueError, "bad sensor field");
            goto done;
        }
        sensor_of_field[field] = (int)j;
    }
    if (ts_out.len < capacity * (Py_ssize_t)sizeof(int64_t) ||
        station_out.len < capacity * (Py_ssize_t)sizeof(int32_t) ||
        offsets_out.len < n_sensors * (capacity + 1) * (Py_ssize_t)sizeof(int32_t) ||
        max_number_chars < 1 || max_number_chars > 64 ||
        texts_out.len < n_sensors * capacity * max_number_chars || length > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "output buffers too small");
        goto done;
    }
    if (length == 0 || bytes[length - 1] != '\n') {
        result = Py_NewRef(Py_None);
        goto done;
    }
    stations = PyMem_Malloc(sizeof(StationTable));
    if (stations == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memset(stations->slot_code, 0xff, sizeof(stations->slot_code));
    stations->count = 0;

    int64_t *ts = (int64_t *)ts_out.buf;
    int32_t *codes = (int32_t *)station_out.buf;
    int32_t *offsets = (int32_t *)offsets_out.buf;
    unsigned char *texts = (unsigned char *)texts_out.buf;
    int32_t used[MAX_FIELDS];
    for (Py_ssize_t j = 0; j < n_sensors; j++) {
        used[j] = 0;
        offsets[j * (capacity + 1)] = 0;
    }
    int ok = 1;
    Py_ssize_t line = 0, position = 0;
    Py_BEGIN_ALLOW_THREADS
    while (position < length) {
        if (line >= capacity) {
            ok = 0;
            break;
        }
        int field = 0, timestamp_seen = 0;
        Py_ssize_t start = position;
        for (;;) {
            Py_ssize_t end = start;
            unsigned char kind = ORDINARY;
            /* No bounds check: the block ends in a newline, which stops this loop. */
            while ((kind = byte_kind[bytes[end]]) == ORDINARY) end++;
            if (end < length && kind != COMMA && kind != NEWLINE) {
                /* A carriage return only right before the line end; nothing else unusual. */
                if (kind == CARRIAGE_RETURN && end + 1 < length && bytes[end + 1] == '\n') {
                    end++;
                } else {
                    ok = 0;
                }
            }
            if (!ok || end >= length) {
                ok = 0;
                break;
            }
            Py_ssize_t stop = end; /* the field without a CR before the line end */
            if (bytes[end] == '\n' && stop > start && bytes[stop - 1] == '\r') stop--;
            if (field >= n_fields) {
                ok = 0;
                break;
            }
            const Py_ssize_t n = stop - start;
            const unsigned char *text = bytes + start;
            if (field == timestamp_field) {
                if (!utc_timestamp(text, n, &ts[line])) {
                    ok = 0;
                    break;
                }
                timestamp_seen = 1;
            } else if (field == station_field) {
                if (!station_id(text, n)) {
                    ok = 0;
                    break;
                }
                int code = station_code(stations, bytes, start, n);
                if (code < 0) {
                    ok = 0;
                    break;
                }
                codes[line] = code;
            } else if (sensor_of_field[field] >= 0) {
                int j = sensor_of_field[field];
                if (n > max_number_chars || !plain_number(text, n)) {
                    ok = 0;
                    break;
                }
                /* n <= max_number_chars, so column j stays inside its capacity * max_number_chars. */
                memcpy(texts + (Py_ssize_t)j * capacity * max_number_chars + used[j], text, (size_t)n);
                used[j] += (int32_t)n;
                offsets[j * (capacity + 1) + line + 1] = used[j];
            }
            field++;
            if (bytes[end] == '\n') {
                position = end + 1;
                break;
            }
            start = end + 1;
        }
        if (!ok || field != n_fields || !timestamp_seen) {
            ok = 0;
            break;
        }
        line++;
    }
    Py_END_ALLOW_THREADS
    if (!ok) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *starts = PyTuple_New(stations->count);
    PyObject *lengths = PyTuple_New(stations->count);
    if (starts == NULL || lengths == NULL) {
        Py_XDECREF(starts);
        Py_XDECREF(lengths);
        goto done;
    }
    for (int code = 0; code < stations->count; code++) {
        PyTuple_SET_ITEM(starts, code, PyLong_FromSsize_t(stations->start[code]));
        PyTuple_SET_ITEM(lengths, code, PyLong_FromSsize_t(stations->length[code]));
    }
    PyObject *count = PyLong_FromSsize_t(line);
    if (count != NULL) result = PyTuple_Pack(3, count, starts, lengths);
    Py_XDECREF(count);
    Py_DECREF(starts);
    Py_DECREF(lengths);

done:
    if (stations != NULL) PyMem_Free(stations);
    PyBuffer_Release(&data);
    PyBuffer_Release(&ts_out);
    PyBuffer_Release(&station_out);
    PyBuffer_Release(&offsets_out);
    PyBuffer_Release(&texts_out);
    return result;
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_VARARGS, "Parse a block of plain CSV lines; None when any line is not plain."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_gridcsv", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gridcsv(void) {
    init_byte_kinds();
    return PyModule_Create(&module);
}
