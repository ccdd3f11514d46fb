import pickle

import pytest

from pipeline.reading import ReadConfig


def test_defaults_and_pickling():
    config = ReadConfig(resolution=(256, 256))
    assert config.num_frames == 17 and config.temporal_compression == 4
    assert config.clip_policy == "first" and config.clip_count is None
    assert config.decoder == "pyav"
    assert pickle.loads(pickle.dumps(config)) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # one check for the reader and the job (issue 16): the message names the nearest valid lengths
        ({"num_frames": 18}, r"1 \+ a multiple of the model's temporal compression \(4\), e.g. 17 or 21; got 18"),
        ({"num_frames": 13, "temporal_compression": 8}, r"temporal compression \(8\), e.g. 9 or 17; got 13"),
        ({"num_frames": 0}, "num_frames must be an integer >= 1"),
        ({"temporal_compression": 0}, "temporal_compression must be an integer >= 1"),
        ({"fps": 0}, "fps must be a positive number"),
        ({"fps": float("nan")}, "fps must be a positive number"),
        ({"clips": "uniform:0"}, "clips must be one of"),
        ({"clips": "random"}, "'first', 'uniform:N', 'all', 'whole'"),
        ({"max_frames": 65}, "max_frames only applies to clips='whole'"),
        ({"clips": "whole", "max_frames": 9}, "must be at least num_frames"),
        ({"short_videos": "pad"}, r"short_videos must be one of \('skip', 'shorten'\)"),
        ({"resolution": (250, 256)}, "multiples of 8"),
        ({"resolution": 256}, r"resolution must be \(height, width\)"),
        ({"resolution": None}, "set exactly one of resolution"),
        ({"buckets": ((256, 256),)}, "set exactly one of resolution"),
        ({"resolution": None, "buckets": ()}, "at least one"),
        ({"resolution": None, "buckets": ((256, 256), (256, 256))}, "must not repeat"),
        ({"resolution": None, "buckets": ((256, 250),)}, "multiples of 8"),
        ({"video_extensions": "mp4"}, "sequence of extensions"),
        ({"caption_key": "json:"}, "caption_key must be"),
        ({"decode_threads": -1}, "decode_threads must be an integer >= 0"),
        ({"decoder": "opencv"}, r"decoder must be one of \('pyav', 'decord'\), got 'opencv'"),
    ],
)
def test_invalid_configs_say_what_is_allowed(kwargs, message):
    kwargs = {"resolution": (256, 256), **kwargs}
    with pytest.raises(ValueError, match=message):
        ReadConfig(**kwargs)


def test_normalizes_lists_from_yaml():
    config = ReadConfig(resolution=None, buckets=[[256, 448], [256, 256]], video_extensions=[".MP4", "webm"])
    assert config.buckets == ((256, 448), (256, 256))
    assert config.video_extensions == ("mp4", "webm")
    assert hash(config)  # frozen and hashable once normalized


def test_uniform_count_and_whole_mode():
    assert ReadConfig(resolution=(64, 64), clips="uniform:3").clip_count == 3
    config = ReadConfig(resolution=(64, 64), clips="whole", max_frames=65, num_frames=9, temporal_compression=8)
    assert config.clip_policy == "whole" and config.max_frames == 65
