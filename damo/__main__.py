from damo.cli import main

raise SystemExit(main())
