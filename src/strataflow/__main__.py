from strataflow.cli import main

# Guarded: the local runner spawns worker processes, which import __main__ again.
if __name__ == "__main__":
    main()
