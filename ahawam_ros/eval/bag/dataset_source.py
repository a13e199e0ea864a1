"""
A LeRobot dataset episode replayed like a bag: `ahawam eval-bag DATASET_DIR`.

A dataset's step t holds the frames and joint state the policy saw then and the command it
sent: replayed at its timestamp, each view's frame and the joint state arrive first, then the
recorded command, as the nodes lived them. The episode is read (and checked) when the source
opens (`data/lerobot/reader`), so a bad dataset fails before any replay, like a bad bag.

Shapes: H x W pixels, A joints.
"""

from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional

from ahawam_ros.data.lerobot.mapping import DatasetMapping, default_mapping
from ahawam_ros.data.lerobot.meta import DatasetIndex, open_dataset
from ahawam_ros.data.lerobot.reader import read_dataset_episode
from ahawam_ros.eval.bag.stream import BagMessage, COMMAND, IMAGE, JOINTS


class DatasetEpisode(NamedTuple):
    """One episode of a LeRobot dataset, as eval-bag lists what it replays."""

    dataset: DatasetIndex  # opened once for all its episodes
    index: int

    @property
    def root(self) -> Path:
        """Return the dataset's directory."""
        return self.dataset.root

    @property
    def name(self) -> str:
        """Return its label: episode_<index, 6 digits> (LeRobot's own file naming)."""
        return f'episode_{self.index:06d}'


def dataset_episodes(root: Path) -> List[DatasetEpisode]:
    """Return every episode of the dataset at `root` (its metadata read and checked)."""
    index = open_dataset(root)
    return [DatasetEpisode(index, entry.index) for entry in index.episodes]


class DatasetSource:
    """
    An episode read into memory, streamed as `BagMessage`s (the `BagSource` interface).

    Parameters
    ----------
    episode : DatasetEpisode
        Which episode.
    mapping : DatasetMapping, optional
        Features -> views and joints; the dataset's default layout when None.

    """

    def __init__(self, episode: DatasetEpisode, mapping: Optional[DatasetMapping] = None):
        index = episode.dataset
        self.mapping = mapping or default_mapping(index)
        self.path = episode.root / episode.name
        self.episode = read_dataset_episode(index, index.episode(episode.index), self.mapping)
        self.camera_topics = self.mapping.camera_features
        self.task = self.episode.task
        self.duration_ns = int(self.episode.timestamps[-1])
        self.merge: Dict[str, Dict[str, float]] = {}
        self._fps = index.fps

    @property
    def features(self) -> DatasetMapping:
        """Return the mapping (it has the `cameras` and `joint_names` the replay reads)."""
        return self.mapping

    def inputs(self) -> Dict[str, object]:
        """Return the features of every input (the report's)."""
        return {'cameras': dict(zip(self.mapping.cameras, self.camera_topics)),
                'joint_states': [s.feature for s in self.mapping.joint_states],
                'commands': [s.feature for s in self.mapping.commands],
                'dataset_fps': self._fps}

    def messages(self) -> Iterator[BagMessage]:
        """Yield each step's frames, joint state and then command, at the step's time."""
        episode = self.episode
        for step, stamp in enumerate(episode.timestamps):
            for view in range(len(episode.cameras)):
                yield BagMessage(IMAGE, int(stamp), view, episode.images[step, view])
            yield BagMessage(JOINTS, int(stamp), -1, episode.joint_positions[step])
            yield BagMessage(COMMAND, int(stamp), -1, episode.actions[step])

    def close(self) -> None:
        """Nothing to release (the source holds the episode in memory)."""

    def __enter__(self) -> 'DatasetSource':
        return self

    def __exit__(self, *exc_info: Optional[Any]) -> None:
        self.close()
