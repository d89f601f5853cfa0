"""The checks that exercise cells call: NumPy only, no framework.

Each check compares a student's value with the expected one, computed by the lesson from
the repository's own code, prints one line when it passes, and raises AssertionError with
a message that says what is wrong when it does not (CS231n style: the relative error and
the tolerance):

    check.close("d_loss", d_loss, expected)        numbers and arrays, to a relative error
    check.equal("params", params, expected)        integers, shapes, strings: exactly
    check.less("grad ratio", ratio, bound)         a number below a bound
    check.predict("lr10", prediction, choices)      record a prediction before a run
    check.outcome("lr10", measured)                 after the run: did it match?
    check.fixed("fixed_up", problems)               a repair: what a diagnosis still finds
"""
from __future__ import annotations

import numpy as np

BLANK = "fill in the exercise above"
PREDICTIONS: dict[str, object] = {}     # name -> what the student predicted (this kernel)


def rel_error(x, y) -> float:
    """max |x - y| / max(1e-8, max(|x| + |y|)): CS231n's relative error for a number; for
    an array, the worst difference relative to the array's scale (elementwise, float32
    rounding of values near zero would look like a mistake)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if not x.size:
        return 0.0
    return float(np.max(np.abs(x - y)) / max(1e-8, float(np.max(np.abs(x) + np.abs(y)))))


def _number_array(name: str, value) -> np.ndarray:
    if value is None:
        raise AssertionError(f"{name} is None: {BLANK}")
    if hasattr(value, "detach"):              # a torch tensor: say so rather than guess
        raise AssertionError(f"{name} is a tensor ({type(value).__name__}): convert it to a "
                             "number or a NumPy array first (.item() or .detach().numpy())")
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} is {type(value).__name__} {value!r}, not a number or an "
                             "array of numbers") from None
    return a


def close(name: str, value, expected, tol: float = 1e-5) -> None:
    """value equals expected to a relative error of at most tol (elementwise, the worst)."""
    a, e = _number_array(name, value), np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape and a.size != e.size:
        raise AssertionError(f"{name} has shape {a.shape}, expected {e.shape}")
    a = a.reshape(e.shape)
    if not np.isfinite(a).all():
        raise AssertionError(f"{name} holds NaN or infinity: {a if a.size < 8 else '...'}")
    err = rel_error(a, e)
    if err > tol:
        got = f"{a.item():.6g}, expected {e.item():.6g}" if e.size == 1 else \
              f"worst at index {tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(a - e)), e.shape))}"
        raise AssertionError(f"{name}: relative error {err:.2e} > tolerance {tol:.0e} ({got})")
    print(f"{name}: correct (relative error {err:.1e} <= {tol:.0e})")


def equal(name: str, value, expected) -> None:
    """value == expected exactly: integers, tuples (shapes), strings."""
    if value is None:
        raise AssertionError(f"{name} is None: {BLANK}")
    if isinstance(expected, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(expected, int) and isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not type(expected) and not (isinstance(expected, int) and isinstance(value, int)):
        raise AssertionError(f"{name} is {type(value).__name__} {value!r}, expected a "
                             f"{type(expected).__name__}")
    if value != expected:
        raise AssertionError(f"{name} is {value!r}, expected {expected!r}")
    print(f"{name}: correct ({value!r})")


def less(name: str, value, bound) -> None:
    """value < bound (both numbers)."""
    a = _number_array(name, value)
    if a.size != 1:
        raise AssertionError(f"{name} has shape {a.shape}, expected one number")
    if not a.item() < bound:
        raise AssertionError(f"{name} is {a.item():.6g}, expected less than {bound:.6g}")
    print(f"{name}: correct ({a.item():.6g} < {bound:.6g})")


def predict(name: str, value, choices=None) -> None:
    """Record a prediction made before a run, for outcome() to compare after it. A blank
    (None), or a value outside choices when choices are given, is rejected."""
    if value is None:
        raise AssertionError(f"{name} is None: {BLANK} (write your prediction before running)")
    if choices is not None and value not in choices:
        raise AssertionError(f"{name} is {value!r}; predict one of {list(choices)!r}")
    PREDICTIONS[name] = value
    print(f"{name}: prediction recorded ({value!r})")


def outcome(name: str, actual) -> bool:
    """After the run: print what was predicted against what was measured, and return whether
    they match. A wrong prediction is part of learning, not an error; a missing one is."""
    if name not in PREDICTIONS:
        raise AssertionError(f"no prediction recorded for {name}: run the prediction cell "
                             "(check.predict) before the experiment")
    guess = PREDICTIONS[name]
    match = guess == actual
    print(f"{name}: you predicted {guess!r}; measured {actual!r}: "
          f"{'that matches' if match else 'it does not match'}")
    return match


def fixed(name: str, problems) -> None:
    """A repair passes when the lesson's diagnosis of it finds nothing wrong. problems: the
    list of what is still wrong, each a message that names the mistake (course/bugs.py
    writes them); [] passes; None means the exercise is blank."""
    if problems is None:
        raise AssertionError(f"{name} is None: {BLANK}")
    if len(problems) == 1:
        raise AssertionError(f"{name}: {problems[0]}")
    if problems:
        raise AssertionError(f"{name}: {len(problems)} mistakes left:\n- " + "\n- ".join(problems))
    print(f"{name}: correct (no mistake left)")
