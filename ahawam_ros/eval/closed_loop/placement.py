"""
Success by where the objects were placed: their distance to the edge of the placement box.

An evaluation seed places the objects by gym-aloha's samplers (`sim.tasks.placement_poses`
with no margin), so the seed alone says where they were, for runs through the runtime and
through the ROS nodes alike. Failures that gather near the edge of the box, where the
demonstrations have neighbours on one side only, point at the data (`record-demos
--placement-margin`) rather than at the runtime.
"""

from typing import Any, Dict, List, Mapping, Sequence

from ahawam_ros.sim.episode import object_positions
from ahawam_ros.sim.tasks import get_task, placement_poses
import numpy as np

EDGE_BINS_M = (0.01, 0.02, 0.04)  # bin edges of the distance to the box's edge (m)


def edge_distance(task: str, seed: int) -> float:
    """
    Return how far inside its placement box the object nearest to its edge lies (m).

    The distance of each object's (x, y) to the nearest side of its own box (`TaskSpec.boxes`),
    the smallest over the objects; negative outside the box.
    """
    spec = get_task(task)
    centres = object_positions(placement_poses(spec, seed))  # (objects, 3)
    distances = [min(x - x_low, x_high - x, y - y_low, y_high - y)
                 for (x, y, _), ((x_low, x_high), (y_low, y_high), _) in zip(centres, spec.boxes)]
    return float(min(distances))


def success_by_edge_distance(episodes: Sequence[Mapping[str, Any]],
                             task: str) -> List[Dict[str, Any]]:
    """
    Return the episodes' successes in bins of `edge_distance` (EDGE_BINS_M).

    Each bin: 'from_m' and 'to_m' (None: unbounded), 'episodes' and 'successes'.
    """
    bounds = (None,) + EDGE_BINS_M + (None,)
    bins = [{'from_m': low, 'to_m': high, 'episodes': 0, 'successes': 0}
            for low, high in zip(bounds[:-1], bounds[1:])]
    for episode in episodes:
        index = int(np.searchsorted(EDGE_BINS_M, edge_distance(task, int(episode['seed'])),
                                    side='right'))
        bins[index]['episodes'] += 1
        bins[index]['successes'] += int(bool(episode['success']))
    return bins


def format_edge_bins(bins: Sequence[Mapping[str, Any]]) -> str:
    """Return one line: 'under 1 cm 7/10, 1-2 cm 9/10, ...' (empty bins left out)."""
    parts = []
    for row in bins:
        if not row['episodes']:
            continue
        low, high = row['from_m'], row['to_m']
        if low is None:
            name = f'under {100 * high:.0f} cm'
        elif high is None:
            name = f'{100 * low:.0f} cm and more'
        else:
            name = f'{100 * low:.0f}-{100 * high:.0f} cm'
        parts.append(f'{name} {row["successes"]}/{row["episodes"]}')
    return ', '.join(parts)
