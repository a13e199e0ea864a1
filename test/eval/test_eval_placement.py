"""eval-sim's success by placement: each seed's distance to the edge of the placement box."""

import numpy as np
import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros.eval.closed_loop.placement import (  # noqa: E402, I100
    edge_distance, format_edge_bins, success_by_edge_distance)
from gym_aloha import utils as aloha_utils  # noqa: E402


def test_the_edge_distance_is_that_of_the_object_nearest_its_edge():
    for seed in range(1000, 1020):
        x, y = aloha_utils.sample_box_pose(seed)[:2]
        assert edge_distance('transfer_cube', seed) == pytest.approx(
            min(x, 0.2 - x, y - 0.4, 0.6 - y))
        peg, socket = aloha_utils.sample_insertion_pose(seed)
        expected = min(peg[0] - 0.1, 0.2 - peg[0], peg[1] - 0.4, 0.6 - peg[1],
                       socket[0] + 0.2, -0.1 - socket[0], socket[1] - 0.4, 0.6 - socket[1])
        assert edge_distance('insertion', seed) == pytest.approx(expected)
    distances = [edge_distance('transfer_cube', seed) for seed in range(1000, 1200)]
    assert 0.0 <= min(distances) < 0.005 and 0.05 < max(distances) <= 0.1


def test_successes_are_counted_in_their_bins():
    seeds = range(1000, 1100)
    distances = np.array([edge_distance('transfer_cube', seed) for seed in seeds])
    episodes = [{'seed': seed, 'success': distance > 0.02}  # the edge fails, the middle works
                for seed, distance in zip(seeds, distances)]
    bins = success_by_edge_distance(episodes, 'transfer_cube')
    assert [(row['from_m'], row['to_m']) for row in bins] == [
        (None, 0.01), (0.01, 0.02), (0.02, 0.04), (0.04, None)]
    assert [row['episodes'] for row in bins] == [
        int(np.sum(distances < 0.01)), int(np.sum((distances >= 0.01) & (distances < 0.02))),
        int(np.sum((distances >= 0.02) & (distances < 0.04))), int(np.sum(distances >= 0.04))]
    assert [row['successes'] for row in bins[:2]] == [0, 0]
    assert [row['successes'] for row in bins[2:]] == [row['episodes'] for row in bins[2:]]
    line = format_edge_bins(bins)
    assert line.startswith(f'under 1 cm 0/{bins[0]["episodes"]}, 1-2 cm 0/')
    assert line.endswith(f'4 cm and more {bins[3]["episodes"]}/{bins[3]["episodes"]}')
    assert format_edge_bins(success_by_edge_distance([], 'transfer_cube')) == ''
