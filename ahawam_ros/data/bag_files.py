"""
Finding, opening and checking rosbag2 bags: directories and bare `.mcap` files.

A bag is a rosbag2 directory (its `metadata.yaml` names the storage files, mcap or sqlite3) or
a bare `.mcap` file, as `ros2 bag record -s mcap` leaves inside its directory or as bags are
often shared. A bare mcap file holds everything `metadata.yaml` would: rosbags reads its
topics and per-topic message counts from the mcap summary, and the rosbag2 metadata record
(`rosbag2` / `serialized_metadata`, written by rosbag2 and rosbags) holds the custom data
(`ahawam.*` keys: the recorded task and FeatureConfig), read here.

Corruption inside a storage file can make a reader skip messages without an error (an mcap
chunk's records are parsed by their own lengths). `check_counts` compares what was read with
the bag's own per-topic message counts, so no message is lost silently.
"""

import json
import os
from pathlib import Path
import struct
from typing import Any, BinaryIO, Dict, Iterator, List, Mapping, Sequence, Tuple, Union

from rosbags.rosbag2 import Reader
import yaml

METADATA_PREFIX = 'ahawam.'  # custom_data keys written by demo_bags (JSON values)
BARE_SUFFIX = '.mcap'
PathLike = Union[str, Path]
_MCAP_MAGIC = b'\x89MCAP0\r\n'
_FOOTER = 37  # op, length, summary start, summary offset start, crc, magic


class BagError(ValueError):
    """A bag that cannot be read as a demonstration (the message says which and why)."""


def is_bare_bag(path: Path) -> bool:
    """Whether `path` is a bare mcap file (not a rosbag2 directory)."""
    return path.is_file() and path.suffix == BARE_SUFFIX


def find_bags(root: PathLike) -> List[Path]:
    """
    Return the bags at or under `root`, sorted by path.

    `root` itself may be a bag (a directory with `metadata.yaml`, or a `.mcap` file). Under a
    directory: every directory with a `metadata.yaml`, and every `.mcap` file that is not part
    of one; hidden directories (staging folders, the episode cache) are skipped, links to
    bags and to directories are followed.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f'{root} does not exist (expected a rosbag2 directory, an '
                                f'{BARE_SUFFIX} file, or a directory of them)')
    if root.is_file():
        if not is_bare_bag(root):
            raise FileNotFoundError(f'{root} is not a bag: expected a rosbag2 directory (with '
                                    f'metadata.yaml) or an {BARE_SUFFIX} file')
        return [root]
    if (root / 'metadata.yaml').is_file():
        return [root]

    found, seen = [], set()
    # os.walk follows links (a directory of links to bags picks a subset of recordings; pathlib's
    # rglob does not follow them before Python 3.13); `seen` stops a link back up the tree.
    for directory, subdirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs[:] = sorted(name for name in subdirs if not name.startswith('.'))
        if 'metadata.yaml' in files:
            found.append(Path(directory))  # a bag: its .mcap files are its own
            subdirs[:] = []
            continue
        found += [Path(directory) / name for name in files if name.endswith(BARE_SUFFIX)
                  and not name.startswith('.') and (Path(directory) / name).is_file()]
    return sorted(found)


def open_bag(path: Path) -> Reader:
    """Open a rosbag2 directory or a bare mcap file; one that cannot be opened: BagError."""
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # noqa: B902 - a damaged index trips the reader anywhere
        # (ReaderError, struct.error, OverflowError, MemoryError from a garbage record size)
        raise BagError(f'cannot open bag {path}: truncated or corrupt, or not a rosbag2 '
                       f'directory or {BARE_SUFFIX} file ({type(exc).__name__}: {exc})'
                       ) from exc
    return reader


def read_messages(reader: Reader, path: Path, connections: Sequence[Any]
                  ) -> Iterator[Tuple[Any, int, bytes]]:
    """
    Yield (connection, log time ns, raw bytes) of `connections` in log-time order.

    Any failure of the storage reader (rosbags raises ReaderError on a truncated file, but
    garbage inside an mcap chunk can surface as OverflowError, struct.error, ...) becomes a
    BagError naming the bag.
    """
    messages = reader.messages(connections)
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except Exception as exc:  # noqa: B902 - whatever the reader trips over is corruption
            raise BagError(f'bag {path} is truncated or corrupt: {type(exc).__name__}: {exc}'
                           ) from exc
        yield item


def _read_string(data: bytes, at: int) -> Tuple[str, int]:
    (size,) = struct.unpack_from('<I', data, at)
    return data[at + 4:at + 4 + size].decode(), at + 4 + size


def _record(bio: BinaryIO, offset: int) -> Tuple[int, bytes]:
    bio.seek(offset)
    op, size = struct.unpack('<BQ', bio.read(9))
    return op, bio.read(size)


def mcap_custom_data(path: Path) -> Dict[str, str]:
    """
    Return the rosbag2 `custom_data` of a bare mcap file ({} when it records none).

    Reads the summary's metadata index, then the `rosbag2` metadata record, whose
    `serialized_metadata` is the YAML of what `metadata.yaml` would hold.
    """
    with path.open('rb') as bio:
        size = bio.seek(0, 2)
        bio.seek(size - _FOOTER)
        footer = bio.read(_FOOTER)
        if len(footer) != _FOOTER or footer[-8:] != _MCAP_MAGIC:
            return {}
        (summary_start,) = struct.unpack_from('<Q', footer, 9)
        at, metadata_at = summary_start, None
        while summary_start and at < size - _FOOTER and metadata_at is None:
            op, body = _record(bio, at)
            at += 9 + len(body)
            if op == 0x0D and _read_string(body, 16)[0] == 'rosbag2':  # metadata index
                metadata_at = struct.unpack_from('<Q', body, 0)[0]
        if metadata_at is None:
            return {}
        op, body = _record(bio, metadata_at)
    name, at = _read_string(body, 0)
    at += 4  # byte length of the key/value map
    values = {}
    while at < len(body):
        key, at = _read_string(body, at)
        values[key], at = _read_string(body, at)
    info = yaml.safe_load(values.get('serialized_metadata', '')) or {}
    info = info.get('rosbag2_bagfile_information', info)
    return dict(info.get('custom_data') or {})


def bag_custom_metadata(reader: Reader) -> Dict[str, Any]:
    """Return the `ahawam.*` custom data of an open bag, prefix removed, values JSON-decoded."""
    path = Path(reader.path)
    if is_bare_bag(path):
        try:
            custom = mcap_custom_data(path)
        except (OSError, struct.error, UnicodeDecodeError, yaml.YAMLError, AttributeError) \
                as exc:
            raise BagError(f'bag {path}: unreadable rosbag2 metadata record ({exc})') from exc
    else:
        custom = reader.storage.metadata.custom if hasattr(reader.storage, 'metadata') else None
    out = {}
    for key, value in (custom or {}).items():
        if key.startswith(METADATA_PREFIX):
            try:
                out[key[len(METADATA_PREFIX):]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len(METADATA_PREFIX):]] = value
    return out


def resolve_camera_topics(reader: Reader, topics: Tuple[str, ...]) -> Tuple[str, ...]:
    """
    Return the bag's topic of each camera topic of `topics`, in order.

    The configured topic, else its image_transport `<topic>/compressed` sibling when only that
    was recorded (a robot's bag of compressed cameras). A camera with neither keeps the
    configured name, so that `check_topics` reports it missing.
    """
    recorded = reader.topics
    out = []
    for topic in topics:
        compressed = topic.rstrip('/') + '/compressed'
        out.append(compressed if topic not in recorded and compressed in recorded else topic)
    return tuple(out)


def check_topics(reader: Reader, path: Path,
                 expected: Mapping[str, Tuple[str, ...]]) -> Dict[str, Any]:
    """Return topic -> connections for the `expected` topic -> accepted types, or BagError."""
    topics = reader.topics
    conns = {}
    for topic, msgtypes in expected.items():
        msgtype = ' or '.join(msgtypes)
        if topic not in topics:
            raise BagError(f'bag {path} lacks topic {topic!r} (expected type {msgtype}); it '
                           f'has {sorted(topics)}')
        actual = topics[topic].msgtype
        if actual not in msgtypes:
            raise BagError(f'bag {path}: topic {topic!r} has type {actual}, expected {msgtype}')
        if topics[topic].msgcount == 0:
            raise BagError(f'bag {path}: no messages on topic {topic!r} (empty bag?)')
        conns[topic] = topics[topic].connections
    return conns


def check_counts(path: Path, expected: Mapping[str, int], read: Mapping[str, int]) -> None:
    """Raise BagError naming every topic of which fewer messages were read than recorded."""
    short = [f'{topic!r} ({read.get(topic, 0)} of {count})'
             for topic, count in expected.items() if read.get(topic, 0) < count]
    if short:
        raise BagError(f'bag {path} is corrupt: fewer messages could be read than it records, '
                       f'on {", ".join(short)}; the storage file is damaged')
