from greeter.cli import main

raise SystemExit(main())
