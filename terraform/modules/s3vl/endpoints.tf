# ---------------------------------------------------------------------------------------------------
# Optional VPC endpoints: the Lambda, the worker and Aurora's aws_lambda calls reach AWS without NAT.
# ---------------------------------------------------------------------------------------------------

resource "aws_security_group" "endpoints" {
  count = var.create_vpc_endpoints ? 1 : 0

  name        = "${var.name}-vpc-endpoints"
  description = "s3vl interface VPC endpoints: HTTPS from inside the VPC"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  for_each = var.create_vpc_endpoints ? toset(local.endpoint_allowed_cidrs) : toset([])

  security_group_id = aws_security_group.endpoints[0].id
  description       = "HTTPS from the VPC (Lambda, worker, Aurora) to the interface endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_endpoint" "interface" {
  for_each = var.create_vpc_endpoints ? toset(var.vpc_endpoint_services) : toset([])

  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
  tags                = merge(local.tags, { Name = "${var.name}-${each.value}" })
}

resource "aws_vpc_endpoint" "s3_gateway" {
  count = var.create_vpc_endpoints && length(var.vpc_endpoint_route_table_ids) > 0 ? 1 : 0

  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.vpc_endpoint_route_table_ids
  tags              = merge(local.tags, { Name = "${var.name}-s3" })
}
