"""Runs a command with transparent huge pages off for it (prctl PR_SET_THP_DISABLE, inherited
across exec): `python3 bench/peers/no_thp.py CMD ARGS...`. On a machine with THP "always" and
little free memory, faulting in gigabytes of fresh ciphertexts spent most of its time in the
kernel compacting memory for 2 MB pages; the flag leaves the rest of the machine as it is.
"""
import ctypes
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(41, 1, 0, 0, 0) != 0:  # PR_SET_THP_DISABLE
    print("no_thp.py: prctl(PR_SET_THP_DISABLE) failed; running with the system's THP setting", file=sys.stderr)
os.execvp(sys.argv[1], sys.argv[1:])
