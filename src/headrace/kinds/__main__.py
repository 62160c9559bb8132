"""`python -m headrace.kinds`: the process of a step of a kind package (see __init__)."""

import sys

from headrace.kinds import main

sys.exit(main())
