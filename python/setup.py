"""setup.py — the build step pyproject.toml cannot express: bundle libgtr.so in the package.

When this directory sits in a gtr checkout (or $GTR_REPO names one), `make lib` is run there
and lib/libgtr.so.X.Y.Z is copied into the wheel as gtr/libgtr.so, so `pip install ./python`
gives a self-contained package (it still needs the system libraries libgtr links: jansson,
libcurl, libzip, zlib). Elsewhere nothing is bundled and the package finds the library
at run time ($GTR_LIBRARY, or a system install: `make install`).
$GTR_LIBRARY set to a libgtr.so file bundles that file instead (no make).
GTR_NO_BUNDLE=1 skips bundling. Offline: pip install --no-index --no-build-isolation ./python (needs the wheel package).
"""
import glob
import os
import shutil
import subprocess
import sys

from setuptools import setup

# pip builds a wheel: `dist_info` (the metadata, which runs bdist_wheel's code) then
# `bdist_wheel`. Older setuptools (Debian 12's) need the separate `wheel` package for both;
# without it setuptools only says "invalid command 'bdist_wheel'".
if {"bdist_wheel", "dist_info"} & set(sys.argv):
    try:
        import setuptools.command.bdist_wheel  # noqa: F401  (setuptools >= 70.1 has its own)
    except ImportError:
        try:
            import wheel  # noqa: F401
        except ImportError:
            sys.exit("gtr: building the package needs the Python 'wheel' package, which this "
                     "Python lacks: apt-get install python3-wheel (then make the venv with "
                     "--system-site-packages), or pip install wheel, or build in isolation "
                     "online: pip install ./python")
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution


def repo_root():
    env = os.environ.get("GTR_REPO")
    root = env or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ok = os.path.exists(os.path.join(root, "Makefile")) and os.path.exists(os.path.join(root, "include", "gtr.h"))
    return root if ok else None


class BuildPyWithLib(build_py):
    def run(self):
        super().run()
        if os.environ.get("GTR_NO_BUNDLE"):
            return
        dest = os.path.join(self.build_lib, "gtr", "libgtr.so")
        given = os.environ.get("GTR_LIBRARY")
        if given:
            shutil.copyfile(os.path.realpath(given), dest)
            os.chmod(dest, 0o755)
            return
        root = repo_root()
        if not root:
            sys.stderr.write("gtr: no gtr checkout found (set GTR_REPO): libgtr.so is not bundled; "
                             "the package will look for it at run time\n")
            return
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        subprocess.run(["make", "-C", root, "lib"], check=True, env=env)
        libs = sorted(glob.glob(os.path.join(root, "lib", "libgtr.so.*.*.*")))
        if not libs:
            raise RuntimeError(f"make lib did not produce {root}/lib/libgtr.so.X.Y.Z")
        shutil.copyfile(libs[-1], dest)
        os.chmod(dest, 0o755)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform, not py3-none-any."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPyWithLib}, distclass=BinaryDistribution)
