"""`python -m pronghorn` runs the same command line as the `pronghorn` script."""

from pronghorn.cli import main

if __name__ == "__main__":
    main()
