"""
AHA-WAM in PyTorch: frame autoencoder, world planner, executor, OVCR, training and policy.

Entry points:

- configs: `presets.get_preset(name)` ('paper', 'small', 'tiny'), `config.ModelConfig`;
- model: `aha_wam.AhaWamModel(config, norm_stats)`, `norm_stats.NormStats`;
- data: `sample_builder.build_sample(...)`, `sample_offset`, `collate_samples`, batch keys;
- training: `losses.training_step` / `compute_losses`, `autoencoder.autoencoder_train_step`,
  `autoencoder.calibrate_latent_stats`, `flash.make_student` / `flash_distill_step`;
- checkpoints: `checkpoint.save_checkpoint` / `load_checkpoint`, `save_autoencoder` /
  `load_autoencoder` / `load_autoencoder_into`;
- inference: `policy.AhaWamPolicy` (the runtime's ChunkPolicy), whose refresh and executor
  update run as GIL-free TorchScript graphs (`compiled`; `warm_up()` builds them).
"""
