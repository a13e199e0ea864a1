"""
LeRobot datasets (codebase v3.0 and v2.1) as a data source beside rosbags, and v3.0 out.

- `meta`: the dataset's index (info.json, tasks, episodes: where each episode's rows and
  video frames are), checked as it is read;
- `mapping`: which features feed the policy's views and joints (the bag mapping's YAML form,
  with feature keys in place of topics);
- `video`: frames decoded with PyAV at the times the rows ask for;
- `reader`: one episode as an `Episode` (what training reads) or as timed messages (what
  `ahawam eval-bag` replays);
- `writer`: bags (or any episodes) written as a LeRobot v3.0 dataset.

Every problem with a dataset raises `DatasetError` naming the file and the field.
"""
