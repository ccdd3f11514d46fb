"""Every bad setting is refused before any work starts (exit 2), with a message that names the flag
and says what is allowed; these run ``main(argv)`` in-process and never reach Ray."""

from __future__ import annotations

import json
import subprocess

import pytest

from jobs.encode_dataset import main
from pipeline.job.config import ConfigError, JobConfig, build_parser, config_from_args, make_config
from pipeline.job.plan import Plan
from pipeline.output.manifest import ModelIdentity, OutputIdentity

from tests.support.jobs import TINY_MODEL, run_cli
from tests.support.shards import write_shards


@pytest.fixture
def valid(tmp_path) -> list[str]:
    """Flags that pass every check: one empty (valid) shard and the tiny model."""
    (shard,) = write_shards(tmp_path, 0).urls
    return ["--input", shard, "--output", str(tmp_path / "out"), "--model", str(TINY_MODEL), "--num-frames", "5"]


@pytest.mark.parametrize("flags, message", [
    # finding 1 of issue 10: each of these was an uncaught ValueError from ReadConfig (exit 1)
    (["--clips", "first", "--max-frames", "100"], "--max-frames: only applies to clips='whole'"),
    (["--max-frames", "10"], "--max-frames: only applies to clips='whole'"),
    (["--clips", "whole", "--max-frames", "3"], "--max-frames: must be at least num_frames (5)"),
    (["--fps", "inf"], "--fps: must be a positive number"),
    (["--fps", "nan"], "--fps: must be a positive number"),
    (["--caption-key", "TXT"], "--caption-key: must be a lower-case part name ('txt') or 'json:FIELD'"),
    (["--buckets", "64x64,64x64"], "--buckets: must not repeat a size"),
    (["--video-extensions", "MP4.x"], "--video-extensions: must be plain extensions like 'mp4'"),
    (["--video-extensions", "mp4,tar.gz"], "--video-extensions: must be plain extensions like 'mp4'"),
    # and the rest
    (["--num-frames", "0"], "--num-frames: must be an integer >= 1, got 0"),
    (["--num-frames", "6"], "--num-frames: must be 1 + a multiple of the model's temporal compression (4), e.g. 5 or 9"),
    (["--chunk-frames", "6"], "--chunk-frames: must be a multiple of the model's temporal compression (4)"),
    (["--fps", "-3"], "--fps: must be a positive number"),
    (["--clips", "some"], "--clips: must be one of"),
    (["--clips", "uniform:0"], "--clips: must be one of"),
    (["--resolution", "250x256"], "--resolution: sizes must be positive multiples of 8"),
    (["--resolution", "big"], "--resolution/--buckets: 'big' is not a size; use HxW"),
    (["--buckets", "256x256,100x200"], "--buckets: sizes must be positive multiples of 8"),
    (["--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["--gpus-per-actor", "-1"], "--gpus-per-actor: must be a non-negative number"),
    (["--gpus-per-actor", "nan"], "--gpus-per-actor: must be a non-negative number"),
    (["--num-actors", "0"], "--num-actors: must be a positive integer"),
    (["--decode-workers", "0"], "--decode-workers: must be a positive integer"),
    (["--decode-start-seconds", "0"], "--decode-start-seconds: must be a positive number of seconds"),
    (["--max-shard-attempts", "0"], "--max-shard-attempts: must be a positive integer"),
    (["--progress-seconds", "inf"], "--progress-seconds: must be a positive number of seconds"),
    (["--lease-seconds", "0"], "--lease-seconds: must be a positive number of seconds"),
    (["--grace-seconds", "-1"], "--grace-seconds: must be a number of seconds >= 0"),
    (["--storage-options", "{not json"], "--storage-options: not valid JSON"),
    (["--storage-options", "[1]"], "--storage-options: must be a JSON object"),
    (["--caption-key", "json:"], "--caption-key: must be a lower-case part name"),
    (["--model", "/nonexistent/model"], "--model: /nonexistent/model: no such file or folder"),
    (["--input", "/nonexistent/shards-*.tar"], "--input: no shards match"),
])
def test_bad_settings_exit_2_naming_the_flag(valid, capsys, flags, message):
    assert main([*valid, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.parametrize("flags", [["--latent-dtype", "int8"], ["--store", "everything"], ["--decoder", "ffmpeg"],
                                   ["--batch-size", "two"]])
def test_flags_with_fixed_choices_are_refused_by_argparse(valid, capsys, flags):
    with pytest.raises(SystemExit) as info:
        main([*valid, *flags])
    assert info.value.code == 2 and flags[0] in capsys.readouterr().err


def test_decoder_fills_the_read_config(valid):
    assert config_from_args([*valid, "--decoder", "decord"]).read.for_model(4).decoder == "decord"
    assert config_from_args(valid).read.for_model(4).decoder == "pyav"


def test_an_output_path_that_is_a_file_is_refused_before_ray(valid, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    assert main([*valid, "--output", str(tmp_path / "a-file")]) == 2
    err = capsys.readouterr().err
    assert f"--output: {tmp_path / 'a-file'} is a file, not a folder" in err


def test_a_read_only_output_is_refused_before_ray(valid, tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir()
    immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    assert immutable.returncode == 0, f"chattr +i needs root and a file system with attributes: {immutable.stderr}"
    try:
        assert main([*valid, "--output", str(folder)]) == 2
        assert main([*valid, "--output", str(folder / "inside")]) == 2
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    err = capsys.readouterr().err
    assert f"--output: cannot write to {folder} (PermissionError" in err
    assert f"--output: cannot write to {folder / 'inside'} (PermissionError" in err
    assert "Traceback" not in err and not list(folder.iterdir())


def test_bad_flags_exit_2_on_the_command_line():
    result = run_cli(None, "--batch-size", "-2", check=False, timeout=60)
    assert result.returncode == 2 and "--batch-size: must be a positive integer, got -2" in result.stderr


def test_settings_checked_against_the_model(valid):
    config = config_from_args(valid)
    plan = Plan(config)
    assert plan.read_config.temporal_compression == 4 and len(plan.urls) == 1
    with pytest.raises(ConfigError, match=r"--num-frames: must be 1 \+ a multiple of the model's temporal "
                                          r"compression \(4\), e.g. 17 or 21; got 18"):
        Plan(JobConfig.from_flags(**{**config.to_dict(), "num_frames": 18}))


def test_yaml_config_with_flag_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("num-frames: 33\nfps: 8\nbuckets: [[256, 448], [448, 256]]\nstorage_options:\n  anon: true\n"
                    "decoder: decord\n")
    config = config_from_args(["--config", str(path), "--fps", "12"])
    read = config.read
    assert read.num_frames == 33 and read.fps == 12 and read.resolution is None and read.decoder == "decord"
    assert read.buckets == ((256, 448), (448, 256)) and config.where.storage_options == {"anon": True}
    path.write_text("num_frames: 33\ncolour: blue\n")
    with pytest.raises(ConfigError, match=r"unknown settings \['colour'\]"):
        config_from_args(["--config", str(path)])
    path.write_text("fps: .inf\n")
    with pytest.raises(ConfigError, match="--fps: must be a positive number"):
        config_from_args(["--config", str(path)])


def test_output_settings_ignore_runtime_knobs_and_spellings():
    a = JobConfig.from_flags(batch_size=1, num_actors=3, chunk_frames=8, decode_workers=2, model="x/",
                             input="a/*.tar", wait=True, grace_seconds=1)
    b = JobConfig.from_flags(batch_size=8, model="x", input="a/{0..3}.tar")
    assert a.output_settings() == b.output_settings()
    assert JobConfig.from_flags(num_frames=33).output_settings() != b.output_settings()
    assert JobConfig.from_flags(decoder="decord").output_settings() != b.output_settings()


# output_settings() of these settings as the config before issue 16 (flat fields and a hand-kept list
# of runtime fields) wrote them into _job.json: outputs written then must still resume (with images off, as they
# were then: --image-extensions '').
EARLIER_OUTPUT_SETTINGS = [
    ({"image_extensions": ""}, {"num_frames": 17, "fps": None, "clips": "first", "max_frames": None, "short_videos": "skip",
          "resolution": [256, 256], "buckets": None, "caption_key": "txt",
          "video_extensions": ["mp4", "mkv", "webm", "mov", "avi"], "decoder": "pyav", "dtype": "auto",
          "latent_dtype": "bfloat16", "store": "mean"}, "ebee5f55f644943c"),
    ({"image_extensions": "", "resolution": None, "buckets": "256x448,448x256", "fps": 8, "clips": "whole", "max_frames": 65, "num_frames": 9,
      "short_videos": "shorten"},
     {"num_frames": 9, "fps": 8, "clips": "whole", "max_frames": 65, "short_videos": "shorten", "resolution": None,
      "buckets": [[256, 448], [448, 256]], "caption_key": "txt",
      "video_extensions": ["mp4", "mkv", "webm", "mov", "avi"],
      "decoder": "pyav", "dtype": "auto", "latent_dtype": "bfloat16", "store": "mean"}, "9f6fb8ae4d04bf7f"),
    ({"image_extensions": "", "decoder": "decord", "latent_dtype": "float16", "store": "moments", "dtype": "float32", "clips": "uniform:3",
      "caption_key": "json:meta.caption", "video_extensions": ".MP4,webm", "resolution": "128", "batch_size": 2,
      "num_actors": 2, "chunk_frames": 8, "fps": 12.5},
     {"num_frames": 17, "fps": 12.5, "clips": "uniform:3", "max_frames": None, "short_videos": "skip",
      "resolution": [128, 128], "buckets": None, "caption_key": "json:meta.caption",
      "video_extensions": ["mp4", "webm"],
      "decoder": "decord", "dtype": "float32", "latent_dtype": "float16", "store": "moments"}, "5a55896d5adaf155"),
]


@pytest.mark.parametrize("settings, earlier, earlier_fingerprint", EARLIER_OUTPUT_SETTINGS)
def test_output_settings_are_those_earlier_outputs_were_written_with(settings, earlier, earlier_fingerprint):
    settings = make_config(settings).output_settings()
    assert settings == earlier and list(settings) == list(earlier)
    assert OutputIdentity(settings, ModelIdentity()).fingerprint == earlier_fingerprint


def test_an_output_written_before_images_were_read_is_refused_with_images_on():
    earlier = OutputIdentity(EARLIER_OUTPUT_SETTINGS[0][1], ModelIdentity())
    now = OutputIdentity(make_config({}).output_settings(), ModelIdentity())
    found = earlier.differences(now)
    assert found == ["image_extensions: not a setting of the version that wrote this output, ['jpg', 'jpeg', 'png', "
                     "'webp'] now (leave it off to resume it as it was)",
                     "max_image_pixels: not a setting of the version that wrote this output, 64000000 now (leave it "
                     "off to resume it as it was)"]


def test_job_json_config_builds_the_same_job():
    """_job.json keeps every setting by its flag's name; the inspect tools build the job back from it."""
    config = make_config({"buckets": "64x64,64x128", "clips": "uniform:2", "batch_size": 3, "store": "moments",
                          "storage_options": '{"anon": true}'})
    again = make_config(json.loads(json.dumps(config.public_dict())))
    assert again == config and again.read.resolution is None


def test_yaml_sections_are_taken_as_their_settings(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("read:\n  num-frames: 9\n  clips: all\nrun:\n  batch_size: 2\nstore: moments\n")
    config = config_from_args(["--config", str(path)])
    assert (config.read.num_frames, config.read.clips, config.run.batch_size, config.latents.store) == \
        (9, "all", 2, "moments")


def test_help_shows_each_default_from_its_field():
    text = " ".join(build_parser().format_help().split())
    assert "clips of the same shape encoded together (default: 4)" in text
    assert "(default: mp4,mkv,webm,mov,avi)" in text and "(default: 256x256)" in text
    assert "decode worker processes per encoder actor" in text and "decode tasks" not in text
