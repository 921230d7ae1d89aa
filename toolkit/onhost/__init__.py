"""Small Python programs the toolkit ships to a host and runs there (the health check, running a
command in the app's environment, the import check). Each is a real, unit-tested file, run on the
host with its Python from the folder the toolkit uploads them to; they import nothing but the
standard library and each other."""
