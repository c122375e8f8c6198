/// The message strings of the seed interface, byte for byte (DESIGN §2,
/// `seed/qschedule-http-interface.txt`). Seed clients match on these.
public enum SeedMessage {
    public static let badRequest = "参数错误"
    public static let authFailed = "授权失败"
    public static let enableFailed = "启用失败"
    public static let disableFailed = "停止失败"
    public static let ok = "操作成功"
    public static let jobNotFound = "job不存在"
    public static let queryFailed = "查询失败"
    public static let retryFailed = "重试失败"
    public static let internalError = "内部错误"
    public static let workersJSONInvalid = "workers json 格式非法"
    public static let allWorkersOffline = "所有机器不能全部下线"
    public static let someWorkersNotApplied = "可能存在未操作成功的机器,请调用查看接口验证"
    public static let operationFailed = "操作失败"
    /// Agent extension, in the seed's style (`job不存在`): no task with this id here.
    public static let taskNotFound = "task不存在"
}

/// Stable snake_case codes added as `reason` to `ret:false` answers.
public enum FailureReason {
    public static let jobNotFound = "job_not_found"
    public static let notThisHost = "not_this_host"
    public static let storeUnavailable = "store_unavailable"
    public static let journalFailed = "journal_failed"
    public static let unknownWorker = "unknown_worker"
    public static let notFound = "not_found"
    public static let methodNotAllowed = "method_not_allowed"
    public static let bodyTooLarge = "body_too_large"
    /// The HTTP layer could not parse the request.
    public static let malformedRequest = "malformed_request"
    /// The request's headers exceed the HTTP layer's limits.
    public static let headersTooLarge = "headers_too_large"
    /// Plain HTTP sent to a listener that speaks HTTPS only (`[agent] tls_cert`).
    public static let tlsRequired = "tls_required"
    /// Cluster mode: the cluster's database could not be reached.
    public static let clusterUnavailable = "cluster_unavailable"
    /// Cluster mode: the job (or task) belongs to another application than the token's.
    public static let otherApp = "other_app"
    /// Cluster mode: `/api/check` for an IP that is neither this host nor a member.
    public static let unknownHost = "unknown_host"
    /// Cluster mode: the worker holding the task did not answer a forwarded request.
    public static let workerUnreachable = "worker_unreachable"
    /// The request's body did not arrive within `read_timeout`.
    public static let requestTimeout = "request_timeout"
    public static let taskNotFound = "task_not_found"
    public static let taskFinished = "task_finished"
    public static let shuttingDown = "shutting_down"
    /// The central scheduler refused to take this host offline for a job it is the last worker of.
    public static let lastWorker = "last_worker"
}
