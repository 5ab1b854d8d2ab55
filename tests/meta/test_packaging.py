"""The wheel carries what an installed swift-ext needs at run time: the plugin file, templates/, plugins/
and the bundled sample data, all found from the installed package (not from a checkout)."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(out), str(REPO)], check=True)
    (whl,) = out.glob("swift_ext-*.whl")
    return whl


def test_wheel_contains_runtime_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "swift_ext/_swift_plugin/swift_ext_plugin.py" in names
    templates = {Path(n).name for n in names if n.startswith("swift_ext/_data/templates/")}
    repo_templates = {p.name for p in (REPO / "templates").iterdir() if p.is_file()}
    assert repo_templates and repo_templates <= templates
    assert "swift_ext/_data/plugins/swift-ext-example/pyproject.toml" in names
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)


def test_installed_wheel_finds_its_resources(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True)
    probe = ("import json, swift_ext, swift_ext.resources as r, swift_ext.bridge as b;"
             "print(json.dumps({'pkg': swift_ext.__file__, 'templates': str(r.resource_dir('templates')),"
             "'plugins': str(r.resource_dir('plugins')), 'plugin_file': b.plugin_path()}))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    res = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    for key in ("pkg", "templates", "plugins", "plugin_file"):
        assert found[key].startswith(str(target)), (key, found[key])    # from the wheel, not the checkout
    assert Path(found["plugin_file"]).is_file()
