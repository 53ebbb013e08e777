import sys

from ragloom.cli import main

sys.exit(main())
