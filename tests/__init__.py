"""gangal's tests, one folder per ``gangal_core`` subpackage.

Every folder is a package (``tests.io``, ``tests.bad_input``, ...) so that pytest imports test
modules by their dotted name: two folders may then hold files of the same name, and a folder
named like a standard module (``io``) cannot shadow it.
"""
