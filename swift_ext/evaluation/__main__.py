from swift_ext.evaluation.cli import main

main()
