"""
The planner's size off the executor's path: the ROS graph beside ever heavier planners.

Each row widens the planner of a preset (its width, and with it its MLP; random weights) and
keeps everything the executor touches: its own layers, and the context it reads, (L, H, S, hd)
per layer, since the planner's attention projects to the shared heads. The executor's update
therefore costs the same while the planner's refresh costs many times more. Per row, measured
one after the other in one run: the planner's refresh cost as a multiple of the executor's
update (from the synchronous update minus the asynchronous one, timed alone), the sync / async
ratio beside its compute ideal (`bench.runtime.update_rates`), and in the ROS graph
(`ros.bench_ros.measure_system`, passed in: the bench may not import ROS eagerly) the
executor's update latency against alone (timed back to back outside the graph, just before)
and against the same graph with the planner paused (`paired_windows`: turns of refreshing and
paused, so that a drift of the machine falls on both), holds, the command period p99 and the
achieved planner refresh rate.
"""

import copy
from typing import Any, Callable, Dict, List, Sequence

from ahawam_ros.bench.runtime import update_rates
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.config import ModelConfig
from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits
import torch

PLANNER_WIDTHS = (1024, 2048, 4096)
PAIRED_ROUNDS = 6  # planner refreshing / paused turns per row (`bench_ros.paired_windows`)


def widened(base: str, width: int) -> ModelConfig:
    """Return preset `base` with a planner `width` wide (everything else as the preset)."""
    config = copy.deepcopy(get_preset(base))
    config.planner.width = width
    config.name = f'{base}+planner{width}'
    return config


def random_policy(config: ModelConfig, seed: int = 0) -> AhaWamPolicy:
    """Return a policy of `config` with seeded random weights (no zero-initialised heads)."""
    torch.manual_seed(seed)
    model = AhaWamModel(config)
    perturb_zero_inits(model, seed=seed)
    return AhaWamPolicy(model)


def heavy_planner_rows(base: str, widths: Sequence[int], measure_system: Callable,
                       settings: Any, seconds: float, repeats: int = 20) -> List[Dict]:
    """
    Measure one row per planner width (the preset's own first); return the rows.

    `measure_system(policy, (V, H, W), settings, seconds=...)` runs the ROS graph.
    """
    rows = []
    for width in (get_preset(base).planner.width, *widths):
        config = widened(base, width)
        policy = random_policy(config)
        rates = update_rates(policy, repeats, num_steps=(config.flow.num_inference_steps,))
        shape = (config.autoencoder.num_views, *policy.image_size)
        system = measure_system(policy, shape, settings, seconds=seconds,
                                paired_rounds=PAIRED_ROUNDS)
        system.pop('commands', None)
        rows.append(row_of(width, rates, system))
    return rows


def row_of(width: int, rates: Dict[str, Any], system: Dict[str, Any]) -> Dict[str, Any]:
    """Return the figures of one row from `update_rates` and `measure_system` results."""
    planner_ms = rates['sync_ms'] - rates['async_ms']
    return {'planner_width': width, 'planner_ms': planner_ms,
            'executor_ms': rates['async_ms'], 'planner_x': planner_ms / rates['async_ms'],
            'graph_vs_alone': system['graph_vs_alone'],
            'graph_vs_paused': system['paired'].get('ratio', float('nan')),
            'holds': system['holds'],
            'ticks': system['ticks'], 'hold_fraction': system['hold_fraction'],
            'hold_reasons': system['hold_reasons'],
            'command_p99_ms': system['command_period_ms']['p99'],
            'planner_hz': system['planner_refreshes'] / system['window_s'],
            'sync_async_ratio': rates['ratio'], 'ideal_ratio': rates['ideal_ratio']}


def heavy_planner_lines(rows: List[Dict[str, float]]) -> List[str]:
    """Return the bench's table of the heavy-planner rows."""
    if not rows:
        return []
    lines = ['executor beside heavier planners (random weights; planner x = its refresh over '
             'the executor update, alone):',
             f'  {"planner":>8}{"refresh":>9}{"x":>7}{"graph/alone":>13}{"/paused":>9}'
             f'{"holds":>8}{"cmd p99":>9}{"plan Hz":>9}{"sync/async":>12}{"ideal":>8}'
             f'{"of ideal":>10}']
    for row in rows:
        lines.append(f'  {row["planner_width"]:>8}{row["planner_ms"]:>7.0f}ms'
                     f'{row["planner_x"]:>6.1f}x{row["graph_vs_alone"]:>12.2f}x'
                     f'{row["graph_vs_paused"]:>8.2f}x'
                     f'{100.0 * row["hold_fraction"]:>7.1f}%{row["command_p99_ms"]:>7.1f}ms'
                     f'{row["planner_hz"]:>9.1f}{row["sync_async_ratio"]:>11.2f}x'
                     f'{row["ideal_ratio"]:>7.2f}x'
                     f'{100.0 * row["sync_async_ratio"] / row["ideal_ratio"]:>9.0f}%')
    held = [f'{row["planner_width"]}: ' + ', '.join(
        f'{reason} {count}' for reason, count in row['hold_reasons'].items())
        for row in rows if row['hold_reasons']]
    if held:
        lines.append('  holds by reason: ' + '; '.join(held))
    return lines
