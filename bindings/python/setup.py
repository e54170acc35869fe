"""Build of the `sako` package: the SWIG wrapper and libsako's C sources compiled into
one extension module, sako._sako, linked against the system SQLite.

The C sources are taken from the repository (../../libsako, or $SAKO_SOURCE_DIR pointing
at the repository root), so `pip install ./bindings/python` needs no installed libsako.
SQLite comes from pkg-config (`apt-get install libsqlite3-dev pkg-config`).
"""
import glob
import os
import re
import shlex
import struct
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.environ.get("SAKO_SOURCE_DIR", os.path.join(HERE, "..", "..")))
INCLUDE = os.path.join(ROOT, "include")
CSRC = os.path.join(ROOT, "libsako")


def c_version():
    """SAKO_VERSION_STRING from the header: the package version is the library's."""
    with open(os.path.join(INCLUDE, "sako.h"), encoding="utf-8") as f:
        m = re.search(r'#define SAKO_VERSION_STRING "([^"]+)"', f.read())
    if not m:
        sys.exit("setup.py: SAKO_VERSION_STRING not found in include/sako.h")
    return m.group(1)


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args, "sqlite3"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit("setup.py: `pkg-config %s sqlite3` failed (%s); install pkg-config and "
                 "libsqlite3-dev" % (" ".join(args), e))
    return shlex.split(out)


class BuildExt(build_ext):
    """Run SWIG into the build directory (the generated wrapper never lands in the
    source tree), then compile it with the C sources."""

    def swig_sources(self, sources, extension):  # noqa: D401 - setuptools hook
        out = []
        for src in sources:
            if not src.endswith(".i"):
                out.append(src)
                continue
            os.makedirs(self.build_temp, exist_ok=True)
            target = os.path.join(self.build_temp, "_sako_wrap.c")
            swig = os.environ.get("SWIG") or self.swig or "swig"
            cmd = [swig, "-python", "-noproxy", "-I" + INCLUDE, "-o", target, src]
            if struct.calcsize("l") == 8 and os.name != "nt":
                # int64_t is `long` on LP64: tell SWIG's stdint.i, so its casts match
                cmd.insert(3, "-DSWIGWORDSIZE64")
            self.announce("swigging: " + " ".join(cmd), level=2)
            subprocess.run(cmd, check=True)
            out.append(target)
        return out


def extension():
    c_files = sorted(glob.glob(os.path.join(CSRC, "*.c")))
    if not c_files:
        sys.exit("setup.py: no C sources in %s; build from a libsako checkout or set "
                 "SAKO_SOURCE_DIR" % CSRC)
    cflags = pkg_config("--cflags")
    libs = pkg_config("--libs")
    return Extension(
        "sako._sako",
        sources=["sako.i"] + c_files,
        include_dirs=[INCLUDE, CSRC],
        define_macros=[("_GNU_SOURCE", None)],
        extra_compile_args=cflags + ["-O2", "-fvisibility=hidden", "-pthread",
                                     "-Wno-unused-parameter"],
        extra_link_args=libs + ["-lm", "-pthread"],
        depends=[os.path.join(INCLUDE, "sako.h")] + glob.glob(os.path.join(CSRC, "*.h")),
    )


setup(version=c_version(), ext_modules=[extension()], cmdclass={"build_ext": BuildExt})
