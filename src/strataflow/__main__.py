from strataflow.cli import main

main()
