"""Read the scalars of ``fairseq-train --tensorboard-logdir DIR`` into training records, without
tensorboard (pure functions, no I/O besides :func:`read_logdir`).

fairseq writes one directory per split under DIR (``train_inner`` every ``--log-interval``
updates, ``train`` at the end of each epoch, ``valid`` or any other ``--valid-subset`` at each
validation) and, in each, one event file per process (``events.out.tfevents.TIME.HOST.PID.N``;
a resumed run adds one). Every metric is one scalar event ``(step, tag, value)`` with
``step`` the number of updates; the epoch is not written, so these logs give curves per update
only.

An event file is a sequence of TFRecords::

    uint64 length | uint32 masked CRC-32C of length | length bytes of data | uint32 masked CRC-32C of data

(little-endian; masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 mod 2**32), each data a
serialized ``tensorboard.Event`` protobuf: ``step`` (field 2, varint) and ``summary``
(field 5), whose ``value`` entries (field 1) hold a ``tag`` (1) and either ``simple_value``
(2, float32) or a scalar ``tensor`` (8: ``dtype`` 1 = DT_FLOAT or 2 = DT_DOUBLE, with
``float_val`` 5, ``double_val`` 6 or ``tensor_content`` 4). Other values (the ``sys.argv``
text fairseq adds, histograms, images) are skipped. A record cut short at the end of a file
is one still being written and ends that file; a CRC that does not match is an error.
"""

import struct
from pathlib import Path

from davam_plugin.cli.training_logs import LogRecord

EVENT_FILE_MARK = "tfevents"
_MASK_DELTA = 0xA282EAD8
_DT_FLOAT, _DT_DOUBLE = 1, 2


class EventFileError(ValueError):
    """An event file that is not one (bad CRC, bad protobuf)."""


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli) of ``data``."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def tfrecords(data):
    """The payloads of the TFRecords in ``data`` (bytes), in order; a truncated last record
    (a file being written) ends the list; EventFileError for a CRC that does not match."""
    records, pos = [], 0
    while pos + 12 <= len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if masked_crc32c(header) != length_crc:
            raise EventFileError(f"bad record length CRC at byte {pos}")
        end = pos + 12 + length + 4
        if end > len(data):
            break
        payload = data[pos + 12 : pos + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[end - 4 : end])
        if masked_crc32c(payload) != payload_crc:
            raise EventFileError(f"bad record data CRC at byte {pos}")
        records.append(payload)
        pos = end
    return records


def _varint(data, pos):
    value = shift = 0
    while True:
        if pos >= len(data):
            raise EventFileError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise EventFileError("varint too long")


def protobuf_fields(data):
    """``[(field_number, wire_type, value)]`` of one serialized protobuf message: an int for
    varints, bytes for length-delimited and fixed-width fields."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        else:
            raise EventFileError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise EventFileError("truncated protobuf field")
        fields.append((number, wire, value))
    return fields


def _tensor_scalar(data):
    dtype, values = None, []
    for number, wire, value in protobuf_fields(data):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 5:  # float_val: packed (wire 2) or one (wire 5)
            values += struct.unpack(f"<{len(value) // 4}f", value)
        elif number == 6:  # double_val
            values += struct.unpack(f"<{len(value) // 8}d", value)
        elif number == 4 and wire == 2:  # tensor_content: raw little-endian values
            size = {_DT_FLOAT: 4, _DT_DOUBLE: 8}.get(dtype)
            if size and len(value) == size:
                values += struct.unpack("<f" if size == 4 else "<d", value)
    return values[0] if dtype in (_DT_FLOAT, _DT_DOUBLE) and len(values) == 1 else None


def scalar_events(payload):
    """``(step, [(tag, value)])`` of one Event: its scalar summary values (step 0 if unset)."""
    step, scalars = 0, []
    for number, wire, value in protobuf_fields(payload):
        if number == 2 and wire == 0:
            step = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 5 and wire == 2:
            for v_number, v_wire, v_value in protobuf_fields(value):
                if v_number != 1 or v_wire != 2:
                    continue
                tag, scalar = None, None
                for f_number, f_wire, f_value in protobuf_fields(v_value):
                    if f_number == 1 and f_wire == 2:
                        tag = f_value.decode("utf-8", errors="replace")
                    elif f_number == 2 and f_wire == 5:
                        (scalar,) = struct.unpack("<f", f_value)
                    elif f_number == 8 and f_wire == 2:
                        scalar = _tensor_scalar(f_value)
                if tag is not None and scalar is not None:
                    scalars.append((tag, float(scalar)))
    return step, scalars


def records_from_events(split, events):
    """:class:`LogRecord` s of one split (epoch None) from ``(step, [(tag, value)])`` events in
    file order: consecutive events of one step make one record, until a tag repeats."""
    records, current, current_step = [], None, None
    for step, scalars in events:
        for tag, value in scalars:
            if current is None or step != current_step or tag in current:
                if current:
                    records.append(LogRecord(split, None, current_step, current))
                current, current_step = {}, step
            current[tag] = value
    if current:
        records.append(LogRecord(split, None, current_step, current))
    return records


def is_event_file(path):
    return EVENT_FILE_MARK in Path(path).name


def split_files(path):
    """``{split: [event files, oldest first]}`` under ``path``: an event file (its split is its
    directory's name), a split directory holding event files, or a ``--tensorboard-logdir``
    whose subdirectories do; empty when there is none."""
    path = Path(path)
    if path.is_file():
        return {path.parent.name: [path]} if is_event_file(path) else {}
    found = {}
    for directory in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        # oldest first: an event file's name holds the time it was opened
        files = sorted((p for p in directory.iterdir() if p.is_file() and is_event_file(p)),
                       key=lambda p: (_opened_at(p), p.name))  # fmt: skip
        if files:
            found[directory.name] = files
    return found


def _opened_at(path):
    parts = path.name.split(".")
    try:
        return int(parts[parts.index(EVENT_FILE_MARK) + 1])
    except (ValueError, IndexError):
        return 0


def read_logdir(path):
    """The training records of the tensorboard log at ``path`` (see :func:`split_files`), split
    by split, each split's files in the order they were written (OSError if one cannot be read,
    EventFileError if one is corrupt, naming the file)."""
    records = []
    for split, files in split_files(path).items():
        events = []
        for file in files:
            try:
                events += [scalar_events(p) for p in tfrecords(Path(file).read_bytes())]
            except EventFileError as e:
                raise EventFileError(f"{file}: {e}") from None
        records += records_from_events(split, events)
    return records
