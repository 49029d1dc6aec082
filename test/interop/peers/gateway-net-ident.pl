#!/usr/bin/perl
# Net::Ident (Debian libnet-ident-perl) as a server would use it, run by
# peers/gateway-scenario.mjs against `identgate serve` on port 113 in a
# network namespace.
#
#   gateway-net-ident.pl accept <host>
#       listens on <host> (a port of the kernel's choice), prints
#       "LISTEN <port>", accepts one connection and asks the peer's ident
#       server who owns it with Net::Ident::lookup on the accepted socket
#   gateway-net-ident.pl ports <host> <serverPort> <clientPort>
#       asks with Net::Ident::lookupFromInAddr about the connection between
#       <host>:<serverPort> (the ident server's side) and our <clientPort>,
#       whether or not it exists
#
# Prints tab-separated lines for the driver to pass on:
#   LISTEN <port>                       (accept only)
#   CONN   <serverPort> <clientPort> <uid>  the ports asked about and our own uid
#   USERID <opsys> <userid>
#   ERROR  <error token, or Net::Ident's failure text>
# and exits 0 when the ident server answered (USERID or ERROR), 1 otherwise.
use strict;
use warnings;
use IO::Socket::INET;
use Net::Ident qw(lookup lookupFromInAddr);
use Socket qw(inet_aton sockaddr_in);

$| = 1;
my $mode = shift @ARGV // '';
my ( $userid, $opsys, $error );

if ( $mode eq 'accept' && @ARGV == 1 ) {
    my ($host) = @ARGV;
    my $listener = IO::Socket::INET->new( LocalAddr => $host, LocalPort => 0, Listen => 1 )
      or die "cannot listen on $host: $@\n";
    print join( "\t", 'LISTEN', $listener->sockport ), "\n";
    my $accepted = $listener->accept() or die "accept failed: $!\n";
    # We accepted, so the peer's port is the server port and ours the client port.
    print join( "\t", 'CONN', $accepted->peerport, $accepted->sockport, $< ), "\n";
    ( $userid, $opsys, $error ) = lookup( $accepted, 5 );
}
elsif ( $mode eq 'ports' && @ARGV == 3 ) {
    my ( $host, $serverPort, $clientPort ) = @ARGV;
    my $address = inet_aton($host) or die "not an address: $host\n";
    print join( "\t", 'CONN', $serverPort, $clientPort, $< ), "\n";
    # lookupFromInAddr(ours, theirs): the query is "theirs , ours".
    ( $userid, $opsys, $error ) = lookupFromInAddr( sockaddr_in( $clientPort, $address ), sockaddr_in( $serverPort, $address ), 5 );
}
else {
    die "usage: gateway-net-ident.pl accept <host>\n       gateway-net-ident.pl ports <host> <serverPort> <clientPort>\n";
}

if ( defined $userid ) {
    print join( "\t", 'USERID', $opsys, $userid ), "\n";
    exit 0;
}
$error = 'no answer' unless defined $error;
chomp $error;
print join( "\t", 'ERROR', $error ), "\n";
exit( defined $opsys && $opsys eq 'ERROR' ? 0 : 1 );
