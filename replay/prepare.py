"""Source blocks to ready-to-send batches: passes (``--loop``), disorder and wire encoding.

This is the CPU-heavy half of a replay (parsing, validating, formatting JSON). For a file it runs in
a helper process by default so that the sending process does nothing but hand bytes to the
producer. The two halves talk through a small bounded queue of ``PreparedBlock``s whose payloads
travel in shared-memory slots, which also keeps memory flat however large the file.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import mmap
import multiprocessing
import os
import queue
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from detector import errors
from detector.errors import CentinelaError
from replay.csv_source import CsvSource, RejectedRow, RowBlock, SourceBlock, SourceOptions
from replay.disorder import Disorder, DisorderOptions
from replay.wire import TextColumns, WireBatch, WireMessages, encode_block, encode_texts

logger = logging.getLogger(__name__)

_MINUTE_NS = 60 * 1_000_000_000
_QUEUE_BLOCKS = 8
_SLOTS = 6
_SLOT_BYTES = 4 * 1024 * 1024
# Blocks of the source are cut into batches of at most this many rows: large enough that per-batch
# costs vanish, small enough that a batch's pieces stay in the CPU cache while they are joined.
BATCH_ROWS = 8192


class BlockSource(Protocol):
    size: int

    def blocks(self) -> Iterator[SourceBlock]: ...


@dataclass
class PreparedBlock:
    """A batch to send, and the bookkeeping of the source rows it came from."""

    batch: WireBatch
    rows_read: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    filtered: int = 0
    dropped: int = 0
    duplicated: int = 0
    bytes_done: int = 0
    pass_index: int = 0


def loop_period_ns(first_ns: int, last_ns: int, step_ns: int | None) -> int:
    """How far each pass is shifted: the file's span plus one sampling step (a minute if unknown)."""
    return max(0, last_ns - first_ns) + (step_ns if step_ns and step_ns > 0 else _MINUTE_NS)


def _sampling_step(ts_ns: npt.NDArray[np.int64]) -> int | None:
    distinct = np.unique(ts_ns)
    if len(distinct) < 2:
        return None
    return int(np.median(np.diff(distinct)))


def _encoder(
    rows: RowBlock, ts_ns: npt.NDArray[np.int64], sensors: tuple[str, ...]
) -> Callable[..., WireBatch]:
    """A function (index, schedule) -> the batch of those rows' wire bytes.

    Rows with the file's own number text are encoded all at once, and batches cut out of the result;
    rows with float values (a DataFrame, a block read line by line) batch by batch, exactly as
    ``Reading.to_json_bytes()`` writes them."""
    if isinstance(rows.tokens, TextColumns):
        codes: npt.NDArray[np.integer[Any]]
        if rows.station_codes is not None:
            codes, names = rows.station_codes.codes, list(rows.station_codes.names)
        else:
            codes, stations = pd.factorize(rows.station_ids)
            names = [str(s) for s in stations]
        messages: WireMessages = encode_texts(codes, names, ts_ns, rows.tokens, sensors)
        return messages.batch

    def encode(index: Any, schedule_ns: npt.NDArray[np.int64] | None) -> WireBatch:
        return encode_block(rows.station_ids[index], ts_ns[index], rows.values[index], sensors, schedule_ns)

    return encode


def prepare(
    source: BlockSource,
    sensors: tuple[str, ...],
    disorder_options: DisorderOptions,
    passes: int | None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[PreparedBlock]:
    """Every batch of every pass (``passes=None``: forever), shifted so time keeps moving forward."""
    disorder = Disorder(disorder_options) if disorder_options.active else None
    first_ns: int | None = None
    last_ns: int | None = None
    step_ns: int | None = None
    pass_index = 0
    shift_ns = 0
    while passes is None or pass_index < passes:
        sent_any = False
        for block in source.blocks():
            rows = block.rows
            if pass_index == 0 and len(rows):
                low, high = int(rows.ts_ns.min()), int(rows.ts_ns.max())
                first_ns = low if first_ns is None else min(first_ns, low)
                last_ns = high if last_ns is None else max(last_ns, high)
                if step_ns is None:
                    step_ns = _sampling_step(rows.ts_ns)
            ts_ns = rows.ts_ns + shift_ns if shift_ns else rows.ts_ns
            encode = _encoder(rows, ts_ns, sensors)
            bookkeeping_done = False
            for start in range(0, max(len(rows), 1), batch_rows):
                part = slice(start, start + batch_rows)
                ts_part = ts_ns[part]
                if disorder is not None:
                    plan = disorder.apply(ts_part)
                    index: Any = plan.index + start
                    schedule: npt.NDArray[np.int64] | None = plan.schedule_ns
                    dropped, duplicated = plan.dropped, plan.duplicated
                else:
                    index, schedule = part, None
                    dropped = duplicated = 0
                batch = encode(index, schedule)
                sent_any = sent_any or len(batch) > 0
                prepared = PreparedBlock(batch, dropped=dropped, duplicated=duplicated, pass_index=pass_index)
                if not bookkeeping_done:
                    prepared.rows_read = block.rows_read
                    prepared.rejected = block.rejected
                    prepared.filtered = block.filtered
                    prepared.bytes_done = block.bytes_done
                    bookkeeping_done = True
                yield prepared
        if not sent_any or first_ns is None or last_ns is None:
            return  # nothing to repeat
        pass_index += 1
        shift_ns = pass_index * loop_period_ns(first_ns, last_ns, step_ns)


def prepare_file(
    path: Path, source_options: SourceOptions, disorder_options: DisorderOptions, passes: int | None
) -> Iterator[PreparedBlock]:
    source = CsvSource(path, source_options)
    return prepare(source, source.layout.sensors, disorder_options, passes)


class _Slots:
    """A ring of payload slots in memory shared with the helper: a file mapped ``MAP_SHARED``.

    Sending a batch's payload through a pipe costs a pickle, a write and a read of every byte, about
    as much CPU as the producer's own work per message; a slot costs one memcpy each side. The free
    slot numbers travel back to the helper, which also bounds how far it runs ahead. The file lives
    in ``/dev/shm`` where there is one (memory, not disk) and is unlinked as soon as both processes
    have mapped it, so nothing is left behind even if they are killed.
    """

    def __init__(self, context: Any, count: int = _SLOTS, size: int = _SLOT_BYTES) -> None:
        self.size = size
        self.length = count * size
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
        handle, self.path = tempfile.mkstemp(prefix="centinela-replay-", dir=folder)
        try:
            os.ftruncate(handle, self.length)
            self.memory = mmap.mmap(handle, self.length)
        finally:
            os.close(handle)
        self.free = context.SimpleQueue()
        for slot in range(count):
            self.free.put(slot)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to a spawned or forkserver helper: it maps the same file by its path.
        return {"size": self.size, "length": self.length, "path": self.path, "free": self.free}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        handle = os.open(self.path, os.O_RDWR)
        try:
            self.memory = mmap.mmap(handle, self.length)
        finally:
            os.close(handle)

    def forget_file(self) -> None:
        """Unlink the file once the helper has it mapped (the mappings stay valid)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def write(self, payload: bytes) -> int:
        slot: int = self.free.get()
        start = slot * self.size
        self.memory[start : start + len(payload)] = payload
        return slot

    def read(self, slot: int, length: int) -> bytes:
        start = slot * self.size
        payload = self.memory[start : start + length]
        self.free.put(slot)
        return payload

    def close(self) -> None:
        self.forget_file()
        self.memory.close()
        self.free.close()


# glibc's mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit


def _keep_freed_memory() -> None:
    """Make glibc keep the memory the helper frees for the next block instead of unmapping it.

    Why: every block allocates the same few dozen large buffers (the block's bytes, numpy arrays);
    by default each is a fresh ``mmap`` whose pages the kernel zeroes on first touch, then is
    unmapped on free: the kernel's page clearing was a few percent of a replay's CPU. A no-op
    where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, 4 * _MMAP_THRESHOLD_MAX)
    except (OSError, AttributeError):
        return


def _worker(  # noqa: PLR0917 - the arguments of a process target
    results: Any,
    slots: _Slots | None,
    path: Path,
    source_options: SourceOptions,
    disorder: DisorderOptions,
    passes: int | None,
) -> None:
    if slots is not None:
        slots.forget_file()  # both sides have it mapped now (the parent before starting this process)
    _keep_freed_memory()
    try:
        for block in prepare_file(path, source_options, disorder, passes):
            payload = block.batch.payload
            if slots is not None and len(payload) <= slots.size:
                block.batch.payload = b""
                results.put(("slot", (slots.write(payload), len(payload), block)))
            else:
                results.put(("block", block))
        results.put(("done", None))
    except CentinelaError as error:
        results.put(("error", (type(error).__name__, str(error))))
    except BaseException:  # the parent must learn of any crash, or it would wait forever
        results.put(("crash", traceback.format_exc()))


def _thread_names() -> list[str]:
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return [thread.name for thread in threading.enumerate()]
    names = []
    for task in tasks:
        with contextlib.suppress(OSError):
            names.append(Path(f"/proc/self/task/{task}/comm").read_text().strip())
    return names


def _context() -> Any:
    # fork starts in milliseconds and inherits the imports, but a Kafka client's native threads
    # ("rdk:*": a test's or a benchmark's earlier producer) do not survive it, and a child touching
    # their state can crash (seen: SIGSEGV in libc). The CLI starts the helper before creating any
    # Kafka client, so it forks; otherwise a forkserver (a clean process that imports the helper's
    # modules once) starts it. From 3.12 Python warns on any fork of a threaded process (numpy's
    # BLAS pool included), so there only a single-threaded process forks.
    methods = multiprocessing.get_all_start_methods()
    names = _thread_names()
    kafka_threads = any(name.startswith("rdk:") for name in names)
    if "fork" in methods and not kafka_threads and (sys.version_info < (3, 12) or len(names) == 1):
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["replay.prepare"])
        return context
    return multiprocessing.get_context("spawn")


class PreparedStream:
    """``prepare_file`` in a helper process; iterate it, then ``close()`` (also on errors)."""

    def __init__(
        self,
        path: Path,
        source_options: SourceOptions,
        disorder_options: DisorderOptions,
        passes: int | None,
        start_method: str | None = None,
    ) -> None:
        CsvSource(path, source_options)  # fail fast, in this process, on a bad header or path
        context: Any = _context() if start_method is None else multiprocessing.get_context(start_method)
        self._results = context.Queue(maxsize=_QUEUE_BLOCKS)
        self._slots = _Slots(context)
        self._process = context.Process(
            target=_worker,
            args=(self._results, self._slots, path, source_options, disorder_options, passes),
            name="centinela-replay-prepare",
            daemon=True,
        )
        # A forked helper shares the caller's heap copy-on-write; its garbage collector would walk
        # (and so copy) every page of the caller's objects: a test or a benchmark holding a million
        # messages made the helper cost 0.1 to 0.2 us more per row. Frozen objects are never walked.
        freeze = context.get_start_method() == "fork"
        if freeze:
            gc.freeze()
        try:
            self._process.start()
        except BaseException:
            self._slots.close()
            raise
        finally:
            if freeze:
                gc.unfreeze()

    def __iter__(self) -> Iterator[PreparedBlock]:
        while True:
            try:
                kind, payload = self._results.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    raise CentinelaError(
                        f"the replay helper process died (exit code {self._process.exitcode})"
                    ) from None
                continue
            if kind == "slot":
                slot, length, block = payload
                block.batch.payload = self._slots.read(slot, length)
                yield block
            elif kind == "block":
                yield payload
            elif kind == "done":
                return
            elif kind == "error":
                name, message = payload
                error_class = getattr(errors, name, CentinelaError)
                raise error_class(message)
            else:
                raise CentinelaError(f"the replay helper process failed:\n{payload}")

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        self._results.close()
        self._slots.close()


def inline_or_process(
    path: Path,
    source_options: SourceOptions,
    disorder_options: DisorderOptions,
    passes: int | None,
    use_process: bool,
) -> tuple[Iterator[PreparedBlock], Callable[[], None]]:
    """The prepared blocks of a file and a function that releases what produced them."""
    if not use_process:
        return prepare_file(path, source_options, disorder_options, passes), lambda: None
    stream = PreparedStream(path, source_options, disorder_options, passes)
    return iter(stream), stream.close
