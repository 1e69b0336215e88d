import json

import numpy as np

from genjax.config import base_config
from genjax.data.pipeline import load_splits
from genjax.eval.classifier import get_classifier
from genjax.eval.suite import image_metrics


def test_domain_classifier_trains_checkpoints_and_restores(classifier_dir):
    s = load_splits(base_config().data, 100)
    train, test = (s.train["x"], s.train["y"]), (s.test["x"], s.test["y"])
    clf = get_classifier("digits", train, test, classifier_dir)
    assert clf.name == "digits_classifier" and clf.test_accuracy > 0.9
    (folder,) = [p for p in classifier_dir.iterdir() if p.name.startswith("digits-")]
    assert clf.fingerprint in folder.name
    meta = json.loads((folder / "classifier.json").read_text())
    assert meta["test_accuracy"] == clf.test_accuracy and meta["weights_sha256"] == clf.weights_sha256
    logs = []
    again = get_classifier("digits", train, test, classifier_dir, log=logs.append)
    assert logs == []  # restored, not retrained
    assert again.identity() == clf.identity()
    np.testing.assert_array_equal(again.features(test[0][:50]), clf.features(test[0][:50]))
    # another pipeline under the same name (other training data): its own network, cached under its
    # own fingerprint; the first one's files are never touched
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    other = get_classifier("digits", (train[0][:400], train[1][:400]), test, classifier_dir, log=logs.append)
    assert logs and other.fingerprint != clf.fingerprint and other.weights_sha256 != clf.weights_sha256
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert get_classifier("digits", train, test, classifier_dir).identity() == clf.identity()
    # real-vs-real is near zero and a broken generator is far from it
    rng = np.random.default_rng(0)
    n = len(test[0])
    noise = rng.uniform(size=test[0].shape).astype(np.float32)
    m = image_metrics(train[0], test[0], noise, (train[1], test[1][:n]), "digits", classifier_dir)
    assert m["classifier_identity"] == clf.identity()  # eval.json says which network gave the figures
    fid = "fid_digits_classifier"
    assert m["real_vs_real"][fid] < 20 < 10 * m["real_vs_real"][fid] < m["model"][fid]
    assert m["real_vs_real"]["is_digits_classifier"] > 8 > m["model"]["is_digits_classifier"]
    assert m["real_vs_real"]["recall"] > 0.8 > m["model"]["recall"]
