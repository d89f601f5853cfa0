"""The DCGAN in PyTorch.

One process-wide setting first: subnormal floats (|x| < 1.2e-38) are flushed to zero, as
TensorFlow and XLA (so JAX) do on a CPU and PyTorch by default does not, so that the three
frameworks compute the same arithmetic. x86 CPUs are slow with subnormals; on our 2-core
machine (Xeon with AVX-512) it made `--arch paper --ngf 8 --ndf 8` 10% faster (0.144 to
0.129 s a step, median of steps 150-200) with the same losses to six digits. On a CPU
without the instruction for it, set_flush_denormal returns False and nothing changes.
"""
import torch

torch.set_flush_denormal(True)
