"""zeep against a REST service's SOAP face whose WSDL the gateway typed from the
provider's OpenAPI document: the answer's fields by name, with their XSD types.

usage: zeep_typed.py PERSON_WSDL_URL CA CERT KEY -> one JSON line
"""
import json
import sys

from zeep import Client
from zeep.transports import Transport

from xroad import mtls_session
from zeep_client import xroad_headers


def main():
    wsdl, ca, cert, key = sys.argv[1:5]
    session = mtls_session(ca, cert, key)
    # strict (zeep's default): the answer must follow the sequence the WSDL promised.
    client = Client(wsdl, transport=Transport(session=session, timeout=10))
    headers = xroad_headers("000000000001", "population-register", "person", "zeep-typed")
    answer = client.service.person(iin="900101300123", _soapheaders=headers)
    print(json.dumps({
        "iin": answer.iin,
        "surname": answer.surname,
        "name": answer.name,
        "age": answer.age,
        "age_type": type(answer.age).__name__,
        "debt": {"currency": answer.debt.currency, "value": str(answer.debt._value_1)},
        "debt_type": type(answer.debt._value_1).__name__,
        "phones": list(answer.phones),
        "address": {"city": answer.address.city, "zip": answer.address.zip},
    }))


if __name__ == "__main__":
    main()
