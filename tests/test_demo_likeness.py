"""The demo's likeness check: the training faces compared with themselves are like the data; a
model that draws glasses on every face is reported off for glasses and for nothing else."""

from latentctl.demo import RATE_GAP, likeness
from latentctl.pictures import synthetic


def test_the_faces_themselves_are_like_the_data_and_a_glasses_only_model_is_not():
    faces, truth = synthetic.synthetic_faces(600, 32, 0)
    other, _ = synthetic.synthetic_faces(1200, 32, 0)
    same = likeness(other[600:], faces)  # new faces from the same drawing
    assert same.off() == {}, same.gaps()
    assert same.fd < 3 * same.floor

    glasses = other[600:][synthetic.detect_attributes(other[600:])["glasses"]]
    skewed = likeness(glasses, faces)
    assert set(skewed.off()) == {"glasses"}, skewed.gaps()
    assert skewed.off()["glasses"] > RATE_GAP
    assert skewed.sample_rates["glasses"] == 1.0
    assert abs(skewed.data_rates["glasses"] - truth["glasses"].mean()) < 0.05  # the detector reads the data right
