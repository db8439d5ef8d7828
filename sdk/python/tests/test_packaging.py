"""`pip install ./sdk/python` works: built from a copy of the tree (an in-tree build would leave
build/ and *.egg-info behind) with the interpreter's own setuptools (no index, no network), into a
temporary target, and imported from there."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import support

CHECK = """
import importlib.metadata, sys, aegis
assert aegis.__file__.startswith(sys.argv[1]), aegis.__file__
assert importlib.metadata.version("aegis-sdk") == aegis.__version__
print(aegis.call_digest("acme", "finance-agent", "stripe", "create_payment",
                        {"currency": "usd", "amount": 7000}))
"""


def builder():
    """An interpreter that can build the package offline: pip, setuptools and wheel (setuptools
    before 70.1 needs wheel for bdist_wheel). Debian: python3-pip brings all three."""
    for python in (sys.executable, "/usr/bin/python3"):
        if python and os.path.exists(python) and subprocess.run(
                [python, "-c", "import setuptools, wheel, pip"],
                capture_output=True).returncode == 0:
            return python
    return None


class PackagingTest(unittest.TestCase):
    def test_pip_install_and_import(self):
        python = builder()
        if python is None:
            self.skipTest("no python3 with pip, setuptools and wheel (apt install python3-pip)")
        tmp = tempfile.mkdtemp(prefix="aegis-sdk-pip-")
        self.addCleanup(shutil.rmtree, tmp, True)
        src = os.path.join(tmp, "src")
        shutil.copytree(support.SDK, src, ignore=shutil.ignore_patterns(
            "tests", "__pycache__", "build", "*.egg-info"))
        target = os.path.join(tmp, "site")
        r = subprocess.run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                            "--no-deps", "--disable-pip-version-check", "--target", target, src],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        env = dict(os.environ, PYTHONPATH=target)
        r = subprocess.run([python, "-c", CHECK, target], capture_output=True, text=True,
                           cwd=tmp, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(),
                         "158090f2a96b1c21d3201b2670858c7d27258ac8797d7dfcd30ae6b2f0fa2448")
        self.assertTrue(os.path.exists(os.path.join(target, "aegis", "py.typed")))


if __name__ == "__main__":
    unittest.main()
