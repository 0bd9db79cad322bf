from prefline.cli import main

main()
