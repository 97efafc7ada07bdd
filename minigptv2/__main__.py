from minigptv2.cli import main

raise SystemExit(main())
