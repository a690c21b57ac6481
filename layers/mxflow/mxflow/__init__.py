"""mxflow: the code every Lambda function of the application imports (shipped as one layer)."""
