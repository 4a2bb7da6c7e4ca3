"""StainNormalisation at conversion, on the fakes: every patch of a split or slide goes through one function, the
setting the upload was planned with holds for all its shards, and each shard samples the stain as dropped."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from local.pcam_synth.real_tissue import real_image
from pcam_pipeline.core import keys
from pcam_pipeline.ingestion.shard_outputs import stain_samples
from pcam_pipeline.ingestion.shard_planning import ShardTask
from pcam_pipeline.wsi import stain
from tests.lab import make_lab

SOURCE = "torchstain-source.png"  # a lab whose stain is 12° (H) and 21° (E) from the reference


def real_patches() -> np.ndarray:
    rgb = real_image(SOURCE)
    rows, columns = rgb.shape[0] // 96, rgb.shape[1] // 96
    return np.stack([rgb[r * 96 : (r + 1) * 96, c * 96 : (c + 1) * 96] for r in range(rows) for c in range(columns)])


def converted_jpegs(lab, prefix: str) -> np.ndarray:
    names = [key for key in lab.blobs.stored_keys(prefix) if key.endswith(".jpg")]
    return np.concatenate([np.asarray(Image.open(io.BytesIO(lab.blobs.get_bytes(name)))) for name in names])


def stain_of(rgb: np.ndarray) -> stain.Stain:
    found = stain.estimate_stain(stain.stained_od(rgb))
    assert found is not None
    return found


@pytest.mark.parametrize("normalisation", ["none", "macenko"])
def test_a_slides_patches_are_converted_as_the_deployment_says_and_its_stain_is_sampled_as_dropped(normalisation):
    lab = make_lab(patches_per_shard=8, stain_normalisation=normalisation)
    patches = real_patches()
    lab.ingestor.ingest(lab.drop("incoming/slides/s1.h5", x=patches))
    lab.convert_all()
    slide = lab.state.slide("s1")
    assert slide.x_stain_normalisation == normalisation
    written = stain.angles_degrees(stain_of(converted_jpegs(lab, slide.image_prefix)), stain.REFERENCE)
    dropped = stain.angles_degrees(stain_of(np.concatenate(patches)), stain.REFERENCE)
    if normalisation == "macenko":
        assert max(written) <= 5 < max(dropped)
    else:
        assert (
            max(written) > 15
            and max(abs(w - d) for w, d in zip(written, dropped, strict=True)) < stain.TOLERANCE_DEGREES
        )
    # The samples are of the stain as dropped, whatever the normalisation: that is what drift watches.
    samples = stain_samples(lab.blobs, slide)
    assert len(samples) == slide.shards_total
    sampled = stain.estimate_stain(np.concatenate(samples).astype(np.float64))
    assert sampled is not None and max(stain.angles_degrees(sampled, stain_of(np.concatenate(patches)))) < 2


def test_every_shard_of_an_upload_keeps_the_normalisation_it_was_planned_with():
    lab = make_lab(patches_per_shard=8, stain_normalisation="macenko")
    lab.ingestor.ingest(lab.drop("incoming/slides/s2.h5", x=real_patches()))
    messages = lab.shard_messages()
    assert {ShardTask.from_message(body).stain_normalisation for body in messages} == {"macenko"}
    older = {name: value for name, value in messages[0].items() if name != "stain_normalisation"}
    assert ShardTask.from_message(older).stain_normalisation == "none"  # a message from before the setting


def test_a_shards_sample_lies_beside_nothing_sagemaker_reads():
    assert keys.stain_sample_key("images/slides/labs/a/s1/r1/", 3) == "tiling/stain/slides/labs/a/s1/r1/00003.npy"
    assert keys.stain_sample_key("images/datasets/ds/train/r1/", 0) == "tiling/stain/datasets/ds/train/r1/00000.npy"


def test_an_unknown_normalisation_is_refused_in_plain_words():
    from pcam_pipeline.core.errors import SettingsError
    from pcam_pipeline.core.settings import ConversionSettings

    env = {"DATA_BUCKET": "b", "STATE_TABLE": "t", "EVENT_BUS": "bus"}
    assert ConversionSettings.from_env(env).stain_normalisation == "none"
    assert ConversionSettings.from_env({**env, "STAIN_NORMALISATION": "macenko"}).stain_normalisation == "macenko"
    with pytest.raises(SettingsError, match="STAIN_NORMALISATION must be one of none, macenko, not 'reinhard'"):
        ConversionSettings.from_env({**env, "STAIN_NORMALISATION": "reinhard"})
