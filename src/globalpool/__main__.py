import sys

from globalpool.cli.main import main

sys.exit(main())
