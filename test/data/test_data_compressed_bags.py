"""Bags whose camera topics carry sensor_msgs/CompressedImage (png, jpeg) read like raw ones."""

from ahawam_ros.data.bag_reader import BagError, read_episode
from ahawam_ros.data.camera_images import decode_compressed
from ahawam_ros.data.features import FeatureConfig
from bag_fixtures import compress_cameras, compressed_msg, gradient_frame
from bag_fixtures import lockstep_messages, STORE, write_bag
import numpy as np
import pytest

FEATURES = FeatureConfig(cameras=('top', 'left_wrist'), image_height=8, image_width=12)
TOP = FEATURES.camera_topic('top')
STEPS = 6
FRAME = gradient_frame(FEATURES.image_shape)  # colour gradients: a channel swap shows


def messages():
    """Lockstep messages of STEPS steps with raw rgb8 gradient frames on both cameras."""
    joints = 0.1 * np.arange(STEPS)[:, None] + 0.01 * np.arange(14)[None, :]  # (T, A)
    return lockstep_messages(FEATURES, joints, joints + 0.5, frame=FRAME)


def read(tmp_path, name, bag_messages):
    return read_episode(write_bag(tmp_path / name, bag_messages, FEATURES), FEATURES)


def assert_same_but_images(episode, reference):
    np.testing.assert_array_equal(episode.joint_positions, reference.joint_positions)
    np.testing.assert_array_equal(episode.actions, reference.actions)
    np.testing.assert_array_equal(episode.timestamps, reference.timestamps)
    assert (episode.task, episode.cameras) == (reference.task, reference.cameras)
    assert episode.images.shape == reference.images.shape == (STEPS, 2, 8, 12, 3)
    assert episode.images.dtype == np.uint8


def test_png_cameras_give_the_raw_episode(tmp_path):
    raw = read(tmp_path, 'raw', messages())
    assert raw.images[2, 1, 3, 4].tolist() == FRAME(2, 1)[3, 4].tolist()
    png = read(tmp_path, 'png', compress_cameras(messages(), 'png'))
    assert_same_but_images(png, raw)
    np.testing.assert_array_equal(png.images, raw.images)  # png is lossless


def test_cameras_may_mix_raw_and_compressed(tmp_path):
    """The decoder follows each topic's type: here top is png, left_wrist stays raw."""
    raw = read(tmp_path, 'raw', messages())
    mixed = [m for m in compress_cameras(messages()) if m[0] == TOP] + \
        [m for m in messages() if m[0] != TOP]
    np.testing.assert_array_equal(read(tmp_path, 'mixed', mixed).images, raw.images)


def test_jpeg_cameras_are_close_to_the_raw_episode(tmp_path):
    raw = read(tmp_path, 'raw', messages())
    jpeg = read(tmp_path, 'jpeg', compress_cameras(messages(), 'jpeg'))
    assert_same_but_images(jpeg, raw)
    error = np.abs(jpeg.images.astype(np.int16) - raw.images)
    assert error.max() <= 16 and error.mean() < 4, (error.max(), error.mean())


def test_decoder_reads_image_transport_formats():
    rgb = FRAME(1, 0)
    message = compressed_msg(0, rgb, 'png')
    message.format = 'rgb8; png compressed bgr8'  # what image_transport writes
    np.testing.assert_array_equal(decode_compressed(message), rgb)
    message.data = message.data.tobytes()
    np.testing.assert_array_equal(decode_compressed(message), rgb)
    grey = compressed_msg(0, np.repeat(rgb[..., :1], 3, axis=2), 'png')
    assert decode_compressed(grey).shape == (8, 12, 3)


def _top_frames(change):
    """Png camera messages with `change(message)` applied to the top camera's third frame."""
    out = compress_cameras(messages())
    index = [i for i, m in enumerate(out) if m[0] == TOP][2]
    change(out[index][3])
    return out


def _set(field, value):
    return lambda message: setattr(message, field, value)


BAD_FRAMES = {
    'corrupt': (lambda: _top_frames(_set('data', np.frombuffer(b'\x89PNG not png', np.uint8))),
                [f'bad message on {TOP!r}', 'cannot decode']),
    'truncated': (lambda: _top_frames(lambda m: setattr(m, 'data', m.data[:len(m.data) // 2])),
                  [f'bad message on {TOP!r}', 'cannot decode']),
    'empty': (lambda: _top_frames(_set('data', np.zeros(0, np.uint8))),
              [f'bad message on {TOP!r}', 'has no data']),
    'format': (lambda: _top_frames(_set('format', 'tiff')),
               [f'bad message on {TOP!r}', "format 'tiff', expected jpeg or png"]),
    'size': (lambda: [(t, ty, s, compressed_msg(s, np.zeros((6, 12, 3), np.uint8)))
                      if t == TOP else (t, ty, s, m) for t, ty, s, m in compress_cameras(
                          messages())], [f'bad message on {TOP!r}', 'expected 8x12']),
    'type': (lambda: [(t, 'std_msgs/msg/String', s, STORE.types['std_msgs/msg/String'](
        data='x')) if t == TOP else (t, ty, s, m) for t, ty, s, m in messages()],
        [f'{TOP!r} has type std_msgs/msg/String, expected sensor_msgs/msg/Image or '
         'sensor_msgs/msg/CompressedImage']),
}


@pytest.mark.parametrize('case', sorted(BAD_FRAMES))
def test_bad_compressed_frames_fail_naming_the_topic(tmp_path, case):
    make, expected = BAD_FRAMES[case]
    path = write_bag(tmp_path / 'bag', make(), FEATURES)
    with pytest.raises(BagError) as info:
        read_episode(path, FEATURES)
    for text in expected + [str(path)]:
        assert text in str(info.value), (case, str(info.value))


def _transport_topics(bag_messages):
    """Rename each compressed camera topic to its image_transport name, `<topic>/compressed`."""
    return [(f'{topic}/compressed' if msgtype.endswith('CompressedImage') else topic, msgtype,
             stamp, message) for topic, msgtype, stamp, message in bag_messages]


def test_a_robot_bag_of_image_transport_compressed_topics_reads_like_the_raw_one(tmp_path):
    """Only `<configured topic>/compressed` was recorded: it stands in for the camera."""
    from ahawam_ros.eval.bag.stream import BagSource
    raw = read(tmp_path, 'raw', messages())
    path = write_bag(tmp_path / 'robot', _transport_topics(compress_cameras(messages())),
                     FEATURES)
    np.testing.assert_array_equal(read_episode(path, FEATURES).images, raw.images)
    with BagSource(path, FEATURES) as source:
        assert source.camera_topics == (f'{TOP}/compressed',
                                        f"{FEATURES.camera_topic('left_wrist')}/compressed")
        frames = [m for m in source.messages() if m.kind == 'image']
    first_top = next(frame for frame in frames if frame.camera == 0)
    assert len(frames) == 2 * STEPS
    np.testing.assert_array_equal(first_top.value, raw.images[0, 0])
