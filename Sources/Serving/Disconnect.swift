import NIOCore
import Synchronization

/// Notices that a client half-closed or closed its connection while its request is being answered, so
/// that a non-streaming request (nothing is written until its answer) frees its batch slot. One per
/// connection, in the pipeline after HTTP decoding; HTTP/1 answers one request at a time, so it holds
/// the action of the request in progress.
final class DisconnectWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private struct State {
        var closed = false
        var action: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    /// Runs `action` when the connection's input closes (at once if it has); replaces the previous one.
    func onClose(_ action: @escaping @Sendable () -> Void) {
        let closed = state.withLock { s -> Bool in
            s.action = action
            return s.closed
        }
        if closed { action() }
    }

    private func fire() {
        let action = state.withLock { s -> (@Sendable () -> Void)? in
            s.closed = true
            return s.action
        }
        action?()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { fire() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fire()
        context.fireChannelInactive()
    }
}
