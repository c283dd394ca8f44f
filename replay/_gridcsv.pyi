# The compiled parser of replay/_gridcsv.c (see replay/grid_block.py).
from typing_extensions import Buffer

def parse(
    data: bytes,
    capacity: int,
    n_fields: int,
    timestamp_field: int,
    station_field: int,
    sensor_fields: tuple[int, ...],
    max_number_chars: int,
    ts_out: Buffer,
    station_out: Buffer,
    offsets_out: Buffer,
    texts_out: Buffer,
    /,
) -> tuple[int, tuple[int, ...], tuple[int, ...]] | None: ...
