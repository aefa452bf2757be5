from dicomcast.cli import main

main()
