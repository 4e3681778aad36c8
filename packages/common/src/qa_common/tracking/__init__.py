"""The only users of mlflow: runs, the logged pyfunc model, the registry and its promotion gate."""
