"""Label stage: status codes, easy facts and transferred / shared / independent labels."""
