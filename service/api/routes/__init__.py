"""One router per resource; handlers parse, call the service layer and shape the answer."""
