"""The catalogue snapshot: current with the shipped specs, and only ever a faster way to the same data."""

import subprocess
import sys

from pdroof.spec import snapshot, yamlio
from pdroof.spec.catalog import Catalog, builtin_root

KINDS = ("accelerator", "path", "tier", "model", "runtime")


def test_snapshot_is_current():
    assert snapshot.SNAPSHOT.read_text(encoding="utf-8") == snapshot.build(builtin_root()), \
        "run python -m pdroof.spec.snapshot"


def test_every_shipped_file_is_in_it_and_reads_as_yaml_does():
    for kind in KINDS:
        for path in Catalog(use_env=False).files(kind).values():
            text = path.read_text(encoding="utf-8")
            known = snapshot.parsed(text)
            assert known is not None, path
            assert repr(known) == repr(yamlio.parse_yaml(text, str(path), snapshot=False)), path


def test_an_edited_file_misses_and_is_parsed(tmp_path):
    src = next(iter(Catalog(use_env=False).files("accelerator").values()))
    text = src.read_text(encoding="utf-8").replace("name:", "name: Edited", 1)
    assert snapshot.parsed(text) is None
    f = tmp_path / src.name
    f.write_text(text, encoding="utf-8")
    assert yamlio.read_yaml(f)["name"].startswith("Edited")


def test_copies_are_fresh():
    text = next(iter(Catalog(use_env=False).files("model").values())).read_text(encoding="utf-8")
    a = snapshot.parsed(text)
    a["id"] = "changed"
    assert snapshot.parsed(text)["id"] != "changed"


def test_builtin_specs_never_import_yaml():
    code = ("import sys; from pdroof.cli.app import main\n"
            "try:\n    main(['estimate', '--model', 'llama-3.1-8b', '--hardware', 'h100-sxm', '--format', 'json'])\n"
            "except SystemExit:\n    pass\n"
            "sys.exit(1 if 'yaml' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_check_mode_fails_when_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "SNAPSHOT", tmp_path / "stale.json")
    (tmp_path / "stale.json").write_text("{}\n")
    monkeypatch.setattr(sys, "argv", ["snapshot", "--check"])
    assert snapshot.main() == 1


def test_json_this_process_wrote_reads_back_as_yaml_reads_it(tmp_path, monkeypatch):
    """Calibration writes hundreds of candidate profiles as JSON and reads each back: parsed as the
    JSON it is, in a tenth of the time, and the same data as PyYAML gives, numbers with an exponent
    included (json writes 1e-05, which PyYAML reads as a string). A text not noted is still
    PyYAML's (a key given twice refused), and the notes are bounded."""
    import json

    import pytest

    from pdroof.spec.errors import SpecError

    monkeypatch.setattr(yamlio, "_WRITTEN", {})
    docs = [Catalog(use_env=False).runtime_document(rid) for rid in ("vllm", "sglang", "trtllm")]
    docs.append({"a": 1e-05, "b": [-1e20, 1.5e20, 3e-7, 0.5, 10], "s": 'say "1e-05" and 2e3 \\ é 😀 𝛼'})
    for i, doc in enumerate(docs):
        text = yamlio.json_spec_text(doc)
        f = tmp_path / f"{i}.yaml"
        f.write_text(text, encoding="utf-8")
        assert yamlio.read_yaml(f) == yamlio._load(text) == json.loads(json.dumps(doc)), i
    with pytest.raises(SpecError, match="duplicate key 'id'"):
        yamlio.parse_yaml('{"id": "a", "id": "b"}', "x.yaml")
    for i in range(300):
        yamlio.json_spec_text({"n": i})
    assert '{"n": 0}' not in yamlio._WRITTEN and '{"n": 299}' in yamlio._WRITTEN and len(yamlio._WRITTEN) == 256
