"""
The two-stage AHA-WAM trainer behind `ahawam train`.

Stage 1 trains the frame autoencoder on single frames with its own reconstruction objective,
then calibrates its latent statistics and saves it (`<out>/autoencoder`). Stage 2 trains the
policy (planner, executor, OVCR, task tokens) with the model's loss (`losses.compute_losses`)
and the autoencoder frozen, and saves `<out>/policy`. Both stages share one loop: AdamW,
warmup + cosine, gradient clipping, a tqdm bar with loss and samples/s, JSON-lines logs,
periodic checkpoints with everything resuming needs, and data parallelism over
`torch.distributed` (DistributedDataParallel, one process per rank, `DrawSampler` shards).
With `executor_steps` > 0 a third stage (`executor_stage`) trains the executor, OVCR and the
task tokens for many epochs on the frozen planner's contexts, computed once, and saves
`<out>/policy` again; it is not resumable (a resume past stage 2 runs it again).

Determinism: initialisation is seeded; batch contents depend only on (seed, epoch, position)
and every step's timesteps and noise only on (seed, stage, step, rank), so a resumed run
continues exactly as the uninterrupted run would have.
"""

from dataclasses import dataclass, replace
import json
from pathlib import Path
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ahawam_ros.data.dataset import (check_episode, collate_frames, DrawSampler, epoch_batches,
                                     FrameDataset, FRAMES, load_episodes, PolicyDataset)
from ahawam_ros.data.episode import as_episode, Episode
from ahawam_ros.data.normalization import compute_norm_stats, dataset_norm_stats
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.autoencoder import (calibrate_latent_stats, FrameAutoencoder,
                                          reconstruction_loss)
from ahawam_ros.model.checkpoint import (load_autoencoder, load_checkpoint, save_autoencoder,
                                         save_checkpoint)
from ahawam_ros.model.losses import compute_losses
from ahawam_ros.model.norm_stats import NormStats
from ahawam_ros.model.sample_builder import collate_samples
from ahawam_ros.train.config import TrainConfig
from ahawam_ros.train.distributed import barrier, DistInfo, init_distributed, mean_across_ranks
from ahawam_ros.train.executor_stage import EarlyDraws, train_executor
from ahawam_ros.train.memory_plan import preflight
from ahawam_ros.train.optim import build_optimizer, build_scheduler, step_generator
from ahawam_ros.train.sharding import (enable_activation_checkpointing, full_model_state,
                                       load_optimizer, save_optimizer, shard)
from ahawam_ros.train.state import (AE_STAGE, checkpoint_dir, EXECUTOR_STAGE,
                                    load_trainer_state, POLICY_STAGE, resolve_resume,
                                    set_rng_state, write_checkpoint)
import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm


LOG_FILE = 'train_log.jsonl'
CONFIG_FILE = 'train_config.json'
Batch = Dict[str, torch.Tensor]


class PolicyObjective(nn.Module):
    """The policy loss as a module (what DistributedDataParallel wraps)."""

    def __init__(self, model: AhaWamModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, generator: Optional[torch.Generator] = None) -> Batch:
        """Return {'loss', 'video_loss', 'action_loss'} of a collated batch."""
        return compute_losses(self.model, batch, generator)


class AutoencoderObjective(nn.Module):
    """The autoencoder's reconstruction loss as a module."""

    def __init__(self, autoencoder: FrameAutoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, batch: Batch, generator: Optional[torch.Generator] = None) -> Batch:
        """Return {'loss'} of {'frames': (B, V, H, W, 3) uint8}."""
        return {'loss': reconstruction_loss(self.autoencoder, batch[FRAMES])}


def wrap_data_parallel(objective: nn.Module, info: DistInfo) -> nn.Module:
    """Wrap `objective` in DistributedDataParallel when several ranks train."""
    if not info.distributed:
        return objective
    ids = [info.device.index] if info.device.type == 'cuda' else None
    return DistributedDataParallel(objective, device_ids=ids)


def backward(objective: nn.Module, batch: Batch, generator: torch.Generator,
             precision: str = 'fp32') -> Dict[str, float]:
    """Forward (bf16 autocast if asked) and backward of one batch (DDP averages gradients)."""
    device = next(iter(batch.values())).device.type
    with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == 'bf16'):
        losses = objective(batch, generator)
    losses['loss'].backward()
    return {name: float(value.detach()) for name, value in losses.items()}


class _Meter:
    """Averages step logs and measures global samples/s over one logging window."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: Dict[str, float] = {}
        self.steps, self.start = 0, time.perf_counter()

    def add(self, logs: Dict[str, float]) -> None:
        for name, value in logs.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1

    def pop(self, batch_size: int) -> Tuple[Dict[str, float], float]:
        """Return the window's mean logs and samples/s, and start a new window."""
        means = {name: value / self.steps for name, value in self.sums.items()}
        rate = self.steps * batch_size / max(time.perf_counter() - self.start, 1e-9)
        self.reset()
        return means, rate


@dataclass
class Stage:
    """One training stage: what it optimises, on which data, and how it saves itself."""

    name: str
    index: int
    objective: nn.Module
    steps: int
    lr: float
    dataset: Dataset
    collate: Callable[[Sequence[Dict[str, np.ndarray]]], Batch]
    save: Callable[[Path, int], Any]


class Trainer:
    """
    Runs both stages of a TrainConfig on one rank (every rank runs one Trainer).

    Parameters
    ----------
    config : TrainConfig
        The run.
    episodes : sequence of Episode, optional
        Train on these instead of `config.data.bags`; simulator episodes
        (`ahawam_ros.sim.episode.SimEpisode`) are converted with all their cameras.

    """

    def __init__(self, config: TrainConfig, episodes: Optional[Sequence[Episode]] = None):
        self.config = config
        self.info = init_distributed(config.device)
        if config.batch_size % self.info.world_size:
            raise ValueError(f'batch_size {config.batch_size} is not divisible by the '
                             f'{self.info.world_size} ranks')
        if config.executor_batch_size % self.info.world_size:
            raise ValueError(f'executor_batch_size {config.executor_batch_size} is not '
                             f'divisible by the {self.info.world_size} ranks')
        self.model_config = config.model_config()  # the preset and any --model-set
        overrides = {name: getattr(config, name) for name in (
            'object_loss_weight', 'grasp_loss_weight', 'grasp_target')
            if getattr(config, name) is not None}
        # replace() validates: the position head has one target at most
        self.model_config.objective = replace(self.model_config.objective, **overrides)
        self.out = Path(config.out)
        # a replica that cannot fit stops here, with the plan, before the data is loaded
        preflight(self.model_config, config.batch_size, self.info.world_size,
                  self.info.device.type, config.precision, config.strategy)
        self.episodes, self.norm_stats = self._load_data(episodes)
        self.executor_episodes = self._executor_episodes()  # bad bags fail before training
        self.history: List[Dict[str, Any]] = []  # the logged rows (every rank keeps its own)

    def _load_data(self, episodes: Optional[Sequence[Episode]]
                   ) -> Tuple[List[Episode], NormStats]:
        executor = self.model_config.executor
        relative = executor.chunk_len if executor.relative_actions else 0
        if episodes is not None:
            episodes = [as_episode(e) for e in episodes]
            for i, episode in enumerate(episodes):
                check_episode(episode, self.model_config, source=f'episode {i}')
            return episodes, compute_norm_stats(episodes, relative_chunk=relative)
        data = self.config.data

        def load() -> Tuple[List[Episode], NormStats]:
            loaded, keys = load_episodes(data, self.model_config)
            return loaded, dataset_norm_stats(loaded, keys, data.cache_path, relative)

        # Rank 0 decodes into the cache first; the others then read it.
        result = load() if self.info.is_main else None
        barrier(self.info)
        return result if result is not None else load()

    def run(self, resume: Optional[str] = None) -> Path:
        """Train (or continue from checkpoint `resume`) and return the final policy dir."""
        resume_dir = resolve_resume(resume) if resume else None
        self._resume_dir = resume_dir
        state = load_trainer_state(resume_dir) if resume_dir else None
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2))
        if state is None or state['stage'] == AE_STAGE:
            autoencoder = self.train_autoencoder(state, resume_dir)
            model, state = self.build_model(autoencoder), None
        else:
            model = load_checkpoint(resume_dir)[0].to(self.info.device)
            self._take_position_target(model, state)
        if state is not None and state['stage'] == EXECUTOR_STAGE:
            return self.train_executor_stage(model, state)  # the joint stage is done
        final = self.train_policy(model, state)
        if self.config.executor_steps > 0:
            if self.sharded:  # stage 3 runs every rank on its own draws: a whole model each
                model = load_checkpoint(final)[0].to(self.info.device)
            final = self.train_executor_stage(model)
        return final

    def _take_position_target(self, model: AhaWamModel, state: Dict[str, Any]) -> None:
        """
        Give a resumed model this run's position target where it differs from its checkpoint's.

        Only where the executor stage begins (the joint stage's last checkpoint): the executor
        stage then learns the new target with a fresh position head (for example the joint
        stage on the grasp target 'first', the executor stage on 'each'). Anywhere else a
        changed target is refused: a stage that changes its loss midway resumes nothing.
        """
        old, new = model.config.objective, self.model_config.objective
        if (old.object_loss_weight, old.grasp_loss_weight, old.grasp_target) == (
                new.object_loss_weight, new.grasp_loss_weight, new.grasp_target):
            return
        at_stage_three = (state['stage'] == POLICY_STAGE and state['step'] == self.config.steps
                          and self.config.executor_steps > 0)
        if not at_stage_three:
            raise ValueError(
                f'the run resumed from {self._resume_dir} has another position target '
                f'(object_loss_weight {old.object_loss_weight}, grasp_loss_weight '
                f'{old.grasp_loss_weight}, grasp_target {old.grasp_target!r}); a target may '
                f'change only where the executor stage begins (at step {self.config.steps}, '
                'the last checkpoint of the joint stage, with --executor-steps > 0)')
        model.config.objective = new  # the executor shares the model's config
        torch.manual_seed(self.config.seed + 2)  # the fresh head, the same on every rank
        model.executor.reset_position_head()
        print(f'stage 3: the position target changes from grasp_target {old.grasp_target!r} '
              f'(object {old.object_loss_weight}, grasp {old.grasp_loss_weight}) to '
              f'{new.grasp_target!r} (object {new.object_loss_weight}, grasp '
              f'{new.grasp_loss_weight}): the position head starts afresh')

    @property
    def sharded(self) -> bool:
        """Return whether the joint stage is sharded over ranks (FSDP)."""
        return self.config.strategy == 'fsdp' and self.info.distributed

    def train_autoencoder(self, state: Optional[Dict[str, Any]] = None,
                          resume_dir: Optional[Path] = None) -> FrameAutoencoder:
        """Stage 1: train, calibrate and save the autoencoder (or load `config.autoencoder`)."""
        cfg = self.config
        if cfg.autoencoder and state is None:
            return load_autoencoder(cfg.autoencoder, self.info.device)[0]
        if state is not None:
            autoencoder = load_autoencoder(resume_dir, self.info.device)[0]
        else:
            torch.manual_seed(cfg.seed)
            autoencoder = FrameAutoencoder(self.model_config.autoencoder).to(self.info.device)
        dataset = FrameDataset(self.episodes)
        stage = Stage(AE_STAGE, 0, AutoencoderObjective(autoencoder), cfg.ae_steps, cfg.ae_lr,
                      dataset, collate_frames,
                      lambda directory, step: save_autoencoder(directory, autoencoder, step))
        self._run_stage(stage, state)
        calibrate_latent_stats(autoencoder, self._calibration_batches(dataset))
        if self.info.is_main:
            save_autoencoder(self.out / AE_STAGE, autoencoder, cfg.ae_steps)
        barrier(self.info)
        return autoencoder

    def _calibration_batches(self, dataset: FrameDataset) -> Iterator[torch.Tensor]:
        """Evenly spaced frames of the dataset, the same on every rank."""
        count = min(len(dataset), self.config.calib_batches * self.config.batch_size)
        draws = np.linspace(0, len(dataset) - 1, count).round().astype(np.int64)
        for part in np.array_split(draws, -(-count // self.config.batch_size)):
            yield collate_frames([dataset[i] for i in part])[FRAMES].to(self.info.device)

    def build_model(self, autoencoder: FrameAutoencoder) -> AhaWamModel:
        """Return a freshly initialised policy (seeded) around the trained autoencoder."""
        torch.manual_seed(self.config.seed + 1)
        model = AhaWamModel(self.model_config, self.norm_stats)
        model.autoencoder.load_state_dict(autoencoder.state_dict())
        return model.to(self.info.device)

    def extra_configs(self) -> Dict[str, Any]:
        """Configs saved with every policy checkpoint besides the model's."""
        first = self.episodes[0]
        return {'train': self.config.to_dict(),
                'data': {'cameras': list(first.cameras), 'joint_names': list(first.joint_names),
                         'tasks': sorted({e.task for e in self.episodes})}}

    def train_policy(self, model: AhaWamModel, state: Optional[Dict[str, Any]] = None) -> Path:
        """Stage 2: train the policy with the autoencoder frozen; save `<out>/policy`."""
        cfg = self.config
        dataset = PolicyDataset(self.episodes, self.model_config, cfg.seed, cfg.data.start_stride)
        extra = self.extra_configs()
        stage = Stage(POLICY_STAGE, 1, PolicyObjective(model), cfg.steps, cfg.lr, dataset,
                      collate_samples,
                      lambda directory, step, weights=None: save_checkpoint(
                          directory, model, step, extra, state_dict=weights))
        if cfg.activation_checkpointing:
            enable_activation_checkpointing(model)
        if self.sharded:
            shard(stage.objective, model, self.info, cfg.precision)
        self._run_stage(stage, state)
        final = self.out / POLICY_STAGE
        if self.sharded:
            weights = full_model_state(model)  # every rank gathers; rank 0 writes
            if self.info.is_main:
                save_checkpoint(final, model, cfg.steps, extra, state_dict=weights)
            barrier(self.info)
            return final
        if self.info.is_main:
            save_checkpoint(final, model, cfg.steps, extra)
        barrier(self.info)
        return final

    def train_executor_stage(self, model: AhaWamModel,
                             state: Optional[Dict[str, Any]] = None) -> Path:
        """Stage 3 (or its rest, from trainer `state`) on the frozen planner; save the policy."""
        cfg = self.config
        episodes = self.episodes + self.executor_episodes
        task_ids = [self.model_config.task.task_names.index(e.task) for e in episodes]
        extra = self.extra_configs()
        train_executor(model, episodes, task_ids, self.out, cfg.executor_steps,
                       cfg.executor_batch_size, cfg.executor_lr, cfg.seed,
                       cfg.executor_anchor_stride, checkpoint_every=cfg.checkpoint_every * 4,
                       extra_configs=extra, log_file=self.out / LOG_FILE,
                       early=EarlyDraws(cfg.executor_early_fraction, cfg.executor_early_steps),
                       train_config=cfg.to_dict(), state=state, info=self.info)
        final = self.out / POLICY_STAGE
        if self.info.is_main:
            save_checkpoint(final, model, cfg.steps + cfg.executor_steps, extra)
        barrier(self.info)
        return final

    def _executor_episodes(self) -> List[Episode]:
        """Return the episodes of `config.executor_data` (stage 3 only), decoded as `data` is."""
        if self.config.executor_data is None or self.config.executor_steps == 0:
            return []
        data = replace(self.config.data, bags=self.config.executor_data, cache_dir=None)
        episodes = load_episodes(data, self.model_config)[0]
        print(f'stage 3: {len(self.episodes)} + {len(episodes)} episodes '
              f'({self.config.executor_data})')
        return episodes

    def batches(self, dataset: Dataset, collate: Callable, start_step: int) -> Iterator[Batch]:
        """Yield this rank's batches from optimiser step `start_step` on, epoch after epoch."""
        local = self.config.batch_size // self.info.world_size
        sampler = DrawSampler(dataset, self.info.world_size, self.info.rank, self.config.seed)
        per_epoch = len(sampler) // local
        if per_epoch == 0:
            raise ValueError(f'{len(dataset)} samples give no full batch of {local} per rank')
        epoch, skip = divmod(start_step, per_epoch)
        while True:
            loader = DataLoader(dataset, batch_sampler=epoch_batches(sampler, epoch, local, skip),
                                num_workers=self.config.num_workers, collate_fn=collate,
                                pin_memory=self.info.device.type == 'cuda')
            yield from loader
            epoch, skip = epoch + 1, 0

    def _run_stage(self, stage: Stage, state: Optional[Dict[str, Any]]) -> None:
        cfg, info = self.config, self.info
        params = [p for p in stage.objective.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, stage.lr, cfg.weight_decay, cfg.betas)
        scheduler = build_scheduler(optimizer, stage.steps, cfg.warmup_frac)
        start = 0
        if state is not None:
            if state['optimizer'] is None:  # a sharded run's: resharded to this one
                load_optimizer(self._resume_dir, stage.objective, optimizer)
            else:
                optimizer.load_state_dict(state['optimizer'])
            scheduler.load_state_dict(state['scheduler'])
            set_rng_state(state['rng'])
            start = state['step']
        sharded = stage.index == 1 and self.sharded
        objective = stage.objective if sharded else wrap_data_parallel(stage.objective, info)
        objective.train()
        batches = self.batches(stage.dataset, stage.collate, start)
        bar = tqdm(total=stage.steps, initial=start, desc=stage.name, disable=not info.is_main,
                   dynamic_ncols=True)
        meter = _Meter()
        for step in range(start, stage.steps):
            batch = {k: v.to(info.device, non_blocking=True) for k, v in next(batches).items()}
            optimizer.zero_grad(set_to_none=True)
            generator = step_generator(cfg.seed, stage.index, step, info.rank)
            logs = backward(objective, batch, generator, cfg.precision)
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            logs['grad_norm'] = float(norm.full_tensor() if hasattr(norm, 'full_tensor')
                                      else norm)  # a sharded run's norm is a DTensor
            logs['lr'] = optimizer.param_groups[0]['lr']
            optimizer.step()
            scheduler.step()
            bar.update(1)
            meter.add(logs)
            if (step + 1) % cfg.log_every == 0 or step + 1 == stage.steps:
                means, rate = meter.pop(cfg.batch_size)
                self._log(stage.name, step + 1, mean_across_ranks(means, info), rate, bar)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == stage.steps:
                self._checkpoint(stage, step + 1, optimizer, scheduler)
        bar.close()

    def _log(self, stage: str, step: int, logs: Dict[str, float], rate: float, bar: tqdm) -> None:
        row = {'stage': stage, 'step': step, **logs, 'samples_per_s': rate}
        self.history.append(row)
        bar.set_postfix(loss=f'{logs["loss"]:.4f}', samples_per_s=f'{rate:.1f}')
        if self.info.is_main:
            with open(self.out / LOG_FILE, 'a') as log:
                log.write(json.dumps(row) + '\n')

    def _checkpoint(self, stage: Stage, step: int, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> None:
        directory = checkpoint_dir(self.out, stage.name, step)
        if stage.index == 1 and self.sharded:  # every rank: its optimiser shard, the weights
            save_optimizer(directory, stage.objective, optimizer)
            weights = full_model_state(stage.objective.model)
            if self.info.is_main:
                write_checkpoint(self.out, directory, stage.name, step, None, scheduler,
                                 self.config.to_dict(),
                                 lambda path: stage.save(path, step, weights))
        elif self.info.is_main:
            write_checkpoint(self.out, directory, stage.name, step, optimizer, scheduler,
                             self.config.to_dict(), lambda path: stage.save(path, step))
        barrier(self.info)
