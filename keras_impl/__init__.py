"""The DCGAN in Keras 3 on the TensorFlow backend.

Importing the package (which `python -m keras_impl.train` does first) picks the backend
before anything imports keras, which reads KERAS_BACKEND once, at its first import, and
keeps TensorFlow's start-up logging out of the user's way without hiding real errors.
"""
import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TF's C++ INFO and WARNING; errors stay

# oneDNN, TensorFlow's fast CPU kernels, on wherever TensorFlow has them. TensorFlow turns
# them on by itself only on CPUs with AVX-512-class neural-network features (VNNI, BF16,
# AMX); an AVX2-only CPU, like most laptops and many cloud machines, gets Eigen's kernels.
# Measured on a 2-core AMD EPYC (family 25, model 1; AVX2, no AVX-512), 2026-12-06:
# benchmarks.step_time at 32 px, Keras 0.269 s a step with Eigen's kernels and 0.118 with
# oneDNN's (2.3x); the bare command's loop 0.560 and 0.147 s a step (3.8x). Set only when
# the user has not set it: TF_ENABLE_ONEDNN_OPTS=0 keeps Eigen's. The device line says
# which (parallel.describe_device).
ONEDNN_ASKED_BY_USER = "TF_ENABLE_ONEDNN_OPTS" in os.environ
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# What TensorFlow's C++ side writes to stderr on a machine without a GPU. It logs through
# absl before absl is initialised, which TF_CPP_MIN_LOG_LEVEL does not reach, so these are
# filtered by content. cuInit errors 100 (no device) and 303 (no driver library) only mean
# "no GPU"; any other cuInit error, and every other line, is passed through.
START_UP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|cudart_stub\.cc.*Could not find cuda drivers"
    r"|cuda_platform\.cc.*failed call to cuInit.*\((100|303)\)"
    r"|cpu_feature_guard\.cc|To enable the following instructions:"
    r"|oneDNN custom operations are on"
    r"|Unable to register cu(DNN|FFT|BLAS) factory")


@contextlib.contextmanager
def quiet_native_logs():
    """Run the block with file descriptor 2 going to a temporary file, then write back every
    line except START_UP_NOISE (Python warnings and tracebacks included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(l for l in lines if not START_UP_NOISE.search(l)))
            sys.stderr.flush()


with quiet_native_logs():
    import tensorflow  # noqa: E402  (loading its C++ libraries logs)
    tensorflow.config.list_physical_devices("GPU")   # and so does looking for GPUs, once
