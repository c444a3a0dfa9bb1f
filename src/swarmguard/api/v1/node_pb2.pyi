from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitTransactionRequest(_message.Message):
    __slots__ = ("transaction", "wait_for_commit", "timeout_seconds")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_COMMIT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    transaction: bytes
    wait_for_commit: bool
    timeout_seconds: float
    def __init__(self, transaction: _Optional[bytes] = ..., wait_for_commit: _Optional[bool] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class SubmitTransactionResponse(_message.Message):
    __slots__ = ("hash", "admission", "log", "height", "code")
    HASH_FIELD_NUMBER: _ClassVar[int]
    ADMISSION_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    admission: str
    log: str
    height: int
    code: int
    def __init__(self, hash: _Optional[bytes] = ..., admission: _Optional[str] = ..., log: _Optional[str] = ..., height: _Optional[int] = ..., code: _Optional[int] = ...) -> None: ...

class SubmitBatchRequest(_message.Message):
    __slots__ = ("transactions",)
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, transactions: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SubmitBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SubmitTransactionResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[SubmitTransactionResponse, _Mapping]]] = ...) -> None: ...

class GetTransactionRequest(_message.Message):
    __slots__ = ("hash",)
    HASH_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    def __init__(self, hash: _Optional[bytes] = ...) -> None: ...

class GetTransactionResponse(_message.Message):
    __slots__ = ("height", "index", "transaction", "block_hash", "transactions", "proof")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    height: int
    index: int
    transaction: bytes
    block_hash: bytes
    transactions: int
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, height: _Optional[int] = ..., index: _Optional[int] = ..., transaction: _Optional[bytes] = ..., block_hash: _Optional[bytes] = ..., transactions: _Optional[int] = ..., proof: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetBlockRequest(_message.Message):
    __slots__ = ("height", "hash")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    height: int
    hash: bytes
    def __init__(self, height: _Optional[int] = ..., hash: _Optional[bytes] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("height", "hash", "header", "transactions", "certificate", "last_commit")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMIT_FIELD_NUMBER: _ClassVar[int]
    height: int
    hash: bytes
    header: bytes
    transactions: _containers.RepeatedScalarFieldContainer[bytes]
    certificate: bytes
    last_commit: bytes
    def __init__(self, height: _Optional[int] = ..., hash: _Optional[bytes] = ..., header: _Optional[bytes] = ..., transactions: _Optional[_Iterable[bytes]] = ..., certificate: _Optional[bytes] = ..., last_commit: _Optional[bytes] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("path", "data", "prove")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PROVE_FIELD_NUMBER: _ClassVar[int]
    path: str
    data: bytes
    prove: bool
    def __init__(self, path: _Optional[str] = ..., data: _Optional[bytes] = ..., prove: _Optional[bool] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("code", "value", "proof", "height", "app_hash", "log")
    CODE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    APP_HASH_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    code: int
    value: bytes
    proof: bytes
    height: int
    app_hash: bytes
    log: str
    def __init__(self, code: _Optional[int] = ..., value: _Optional[bytes] = ..., proof: _Optional[bytes] = ..., height: _Optional[int] = ..., app_hash: _Optional[bytes] = ..., log: _Optional[str] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Status(_message.Message):
    __slots__ = ("chain_id", "height", "last_block_hash", "app_hash", "peers", "peers_connected", "sync_state", "mempool_transactions", "consensus_key", "earliest_height")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LAST_BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    APP_HASH_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    PEERS_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    SYNC_STATE_FIELD_NUMBER: _ClassVar[int]
    MEMPOOL_TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_KEY_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    last_block_hash: bytes
    app_hash: bytes
    peers: int
    peers_connected: int
    sync_state: str
    mempool_transactions: int
    consensus_key: bytes
    earliest_height: int
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., last_block_hash: _Optional[bytes] = ..., app_hash: _Optional[bytes] = ..., peers: _Optional[int] = ..., peers_connected: _Optional[int] = ..., sync_state: _Optional[str] = ..., mempool_transactions: _Optional[int] = ..., consensus_key: _Optional[bytes] = ..., earliest_height: _Optional[int] = ...) -> None: ...

class GetValidatorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Validator(_message.Message):
    __slots__ = ("consensus_key", "power", "reputation_ppm")
    CONSENSUS_KEY_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    REPUTATION_PPM_FIELD_NUMBER: _ClassVar[int]
    consensus_key: bytes
    power: int
    reputation_ppm: int
    def __init__(self, consensus_key: _Optional[bytes] = ..., power: _Optional[int] = ..., reputation_ppm: _Optional[int] = ...) -> None: ...

class Validators(_message.Message):
    __slots__ = ("height", "validators")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    height: int
    validators: _containers.RepeatedCompositeFieldContainer[Validator]
    def __init__(self, height: _Optional[int] = ..., validators: _Optional[_Iterable[_Union[Validator, _Mapping]]] = ...) -> None: ...

class StreamBlocksRequest(_message.Message):
    __slots__ = ("from_height",)
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    from_height: int
    def __init__(self, from_height: _Optional[int] = ...) -> None: ...
