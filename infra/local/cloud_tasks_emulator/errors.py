"""The one exception the emulator's logic raises; the gRPC layer turns it into a status."""

import grpc


class RpcError(Exception):
    """A failed call, carrying the status code the real service would answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.NOT_FOUND, message)


def unimplemented(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.UNIMPLEMENTED, f"{message} is not supported by the Cloud Tasks emulator")
