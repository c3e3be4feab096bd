from lockd.cli import main

main()
