import sys

from goz.cli import main

sys.exit(main())
