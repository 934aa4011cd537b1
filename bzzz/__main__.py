from bzzz.cli.app import main

main()
