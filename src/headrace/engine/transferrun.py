"""`python -m headrace.engine.transferrun --source PORT --output PORT ...`: a
DataTransferStep recorded before DataTransferStep became a kind package
(headrace.kinds.transfer) keeps running. Its argv becomes a `TransferSpec` and runs as a
step of the `transfer` kind; new steps run `python -m headrace.kinds`."""

import sys

from headrace.kinds.transfer.program import legacy_main

if __name__ == "__main__":
    sys.exit(legacy_main())
