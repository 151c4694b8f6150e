from hightide.cli.main import main

main()
