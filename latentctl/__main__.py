from latentctl.cli.app import main

main()
