"""The command line: `python -m attnviz COMMAND ...`.

A thin dispatcher: each command lives in its own module, which provides `add_parser(subparsers)`;
that adds the command's subparser and sets `run=function(args)`.
"""
import argparse

from attnviz import bench, cli

COMMANDS = [cli, bench]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m attnviz", description="attnviz command line")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
